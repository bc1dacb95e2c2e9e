"""Results as streams: a report writes its artifact in chunks as it goes, a download reads them one at a time.

Neither side ever holds the whole result: the worker keeps at most one chunk (``CHUNK`` bytes) before it is
written, on its own connection and committed at once; the web reads one chunk per query, each on a short
connection of its own, so a long download holds no transaction open. The chunks are rows of PostgreSQL
(SQLite locally), so any web process serves any result and retention removes them with their job.

A result that never fills one chunk (most reports' CSV) is never written as a chunk: it goes whole into its
``job_results`` row, in the transaction that gives the job its success, so a small result costs no
connection or transaction of its own.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from app.extensions import db
from app.jobs.models import JobResultChunk

CHUNK = 1024 * 1024
_CHUNKS = JobResultChunk.__table__
_READ = sa.select(_CHUNKS.c.data).where(_CHUNKS.c.job_id == sa.bindparam("job_id"), _CHUNKS.c.seq == sa.bindparam("seq"))


@dataclass(frozen=True)
class StoredResult:
    """A result whose bytes are in the database: what its row records."""

    filename: str
    content_type: str
    size: int
    chunk_size: int | None  # None: smaller than one chunk, whole in ``content`` (written with the job's success)
    content: bytes | None = None


class ResultWriter:
    """The file-like a report writes its result to (``ctx.open_result``); ``close`` gives the StoredResult."""

    def __init__(self, job_id: uuid.UUID, filename: str, content_type: str, limit: int) -> None:
        self._job_id, self._filename, self._content_type, self._limit = job_id, filename, content_type, limit
        self._buffer = bytearray()
        self._seq = 0
        self.size = 0
        self.stored: StoredResult | None = None
        self._conn: sa.Connection | None = None  # opened with the first full chunk

    def write(self, data: bytes | str) -> int:
        """Append ``data`` (text as UTF-8); full chunks go to the database at once."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.size += len(raw)
        if self.size > self._limit:
            raise ValueError(f"result is over {self._limit} bytes, the limit (LONGRUN_MAX_RESULT_BYTES)")
        self._buffer += raw
        while len(self._buffer) >= CHUNK:
            self._put(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(raw)

    def _put(self, data: bytes) -> None:
        if self._conn is None:
            self._conn = db.engine.connect()
            # What an earlier attempt of this job left behind (it died mid-write) goes first, with chunk 0.
            self._conn.execute(sa.delete(_CHUNKS).where(_CHUNKS.c.job_id == self._job_id))
        self._conn.execute(sa.insert(_CHUNKS), {"job_id": self._job_id, "seq": self._seq, "data": data})
        self._conn.commit()
        self._seq += 1

    def close(self) -> StoredResult:
        """Write what is left; the result is complete (its row is written with the job's success)."""
        if self.stored is None:
            if self._conn is None:  # under one chunk: whole in the row, nothing written yet
                self.stored = StoredResult(self._filename, self._content_type, self.size, None, bytes(self._buffer))
            else:
                if self._buffer:
                    self._put(bytes(self._buffer))
                self._conn.close()
                self.stored = StoredResult(self._filename, self._content_type, self.size, CHUNK)
            self._buffer.clear()
        return self.stored

    @property
    def wrote_chunks(self) -> bool:
        """Whether any chunk row was written (a result whole in its row must make sure none is left)."""
        return self._conn is not None

    def abandon(self) -> None:
        """The report failed while writing (or never closed the stream): what it wrote goes."""
        self._buffer.clear()
        if self._conn is None or self._conn.closed:
            return
        self._conn.execute(sa.delete(_CHUNKS).where(_CHUNKS.c.job_id == self._job_id))
        self._conn.commit()
        self._conn.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


def delete_chunks(job_id: uuid.UUID) -> None:
    """Remove a job's result bytes (in the caller's transaction): a retry by hand starts over."""
    db.session.execute(sa.delete(_CHUNKS).where(_CHUNKS.c.job_id == job_id))


def read_range(job_id: uuid.UUID, chunk_size: int, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (inclusive) of a stored result, one chunk per query."""
    seq, skip = divmod(start, chunk_size)
    left = end - start + 1
    while left > 0:
        with db.engine.connect() as conn:
            data = conn.execute(_READ, {"job_id": job_id, "seq": seq}).scalar_one_or_none()
        if data is None:
            return  # purged meanwhile: the response ends short, and the client sees it did
        piece = bytes(data[skip:skip + left])
        left -= len(piece)
        seq, skip = seq + 1, 0
        yield piece


RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """The one byte range a ``Range`` header asks for, as (start, end) inclusive; None for the whole; False when
    it cannot be satisfied (416). Several ranges are answered whole (allowed by RFC 9110)."""
    if not header:
        return None
    match = RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        length = int(last)
        return (max(0, size - length), size - 1) if length and size else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end
