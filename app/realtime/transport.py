"""What we add to simple-websocket (pinned 1.1.0) connections: atomic frames, a size limit, a clean close, and a
wake-up on client input. The one module that knows simple-websocket's internals (tests/realtime/test_transport.py
fails if the pinned version's change)."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import simple_websocket
from wsproto.connection import ConnectionState

# After our close frame, how long the peer may take to read it before the TCP socket is released.
CLOSE_LINGER_SECONDS = 2.0


class SerialSocket:
    """The connection's TCP socket, with each frame one atomic ``sendall`` and a lingering close.

    simple-websocket's reader thread sends pings, pongs and close frames on the same socket while the
    handler may be blocked in ``send`` to a slow client: without a lock the frames interleave and the
    client drops the connection (1002). ``sendall`` also finishes partial writes.
    """

    def __init__(self, sock: Any, peer_may_send: Callable[[], bool] = lambda: False) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._peer_may_send = peer_may_send

    def send(self, data: bytes) -> int:
        """Write one whole frame."""
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def close(self) -> None:
        """Close; if the peer has not answered our close frame yet, first drain what it still sends (bounded).

        simple-websocket closes right after its close frame. When the client is still sending (a message
        past ``max_message_size``), closing with unread data makes the kernel answer with a reset, and the
        client may never read the 1009 close frame that explains why. After a finished close handshake
        the server closes at once (RFC 6455 section 7.1.1).
        """
        if not self._peer_may_send():
            self._sock.close()
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CLOSE_LINGER_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                self._sock.settimeout(left)
                if not self._sock.recv(65536):
                    break  # the peer closed its side too
        except OSError:
            pass  # already gone, reset, or the linger timed out
        finally:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:  # recv, fileno, setblocking, ...
        return getattr(self._sock, name)


class ReaderThread(threading.Thread):
    """simple-websocket's per-connection reader thread (its ``thread_class`` option), made safe to rely on.

    Created with the connection's ``_thread`` method as target, before any frame is read: the socket is
    wrapped here, so even the first frames go through ``SerialSocket``. A daemon, so a silent client never
    holds an exiting process. When the reader ends, the handler is woken once more: on a too-big message
    simple-websocket wakes it before it marks the connection closed, and the handler would sleep on.
    """

    def __init__(self, target: Any, **kwargs: Any) -> None:
        super().__init__(target=target, daemon=True, **kwargs)
        self._ws = ws = getattr(target, "__self__", None)
        if ws is not None and not isinstance(ws.sock, SerialSocket):
            # We sent a close frame the client has not answered: it may still be sending.
            ws.sock = SerialSocket(ws.sock, lambda: ws.ws.state is ConnectionState.LOCAL_CLOSING)

    def run(self) -> None:
        """Read frames until the connection ends, then wake the handler."""
        try:
            super().run()
        finally:
            if self._ws is not None:
                self._ws.event.set()


class WakingEvent(threading.Event):
    """simple-websocket's reader event (its ``event_class`` option), which can also wake one more listener.

    The reader thread sets it whenever a client message arrives or the connection closes. Waking the handler's
    inbox too lets it block on one queue instead of polling the socket: at 1,000 sockets, the difference between
    idle and thousands of wake-ups per second.
    """

    def __init__(self) -> None:
        super().__init__()
        self.also: Callable[[], None] | None = None

    def set(self) -> None:
        """Set, and wake the other listener."""
        super().set()
        if self.also is not None:
            self.also()


class IncompatibleWebSocket(RuntimeError):
    """simple-websocket no longer works the way this module relies on (a version other than the pinned one)."""


def wake_on_input(ws: Any, wake: Callable[[], None]) -> bool:
    """Call ``wake`` whenever the client sends or closes; False for a socket that is not simple-websocket's."""
    if not isinstance(ws, simple_websocket.ws.Base):
        return False  # another implementation (a test double): it wakes its handler its own way
    event = getattr(ws, "event", None)
    if not isinstance(event, WakingEvent):
        raise IncompatibleWebSocket(
            f"simple-websocket's connection has no WakingEvent reader event (found {type(event).__name__}): "
            "SOCK_SERVER_OPTIONS lacks server_options(), or the installed simple-websocket is not the pinned 1.1.0")
    event.also = wake
    return True


def server_options(max_message_bytes: int, ping_interval: float = 25) -> dict[str, Any]:
    """``SOCK_SERVER_OPTIONS`` for flask-sock: pings, a message size limit (close 1009 past it), our reader thread
    and event."""
    return {"ping_interval": ping_interval, "max_message_size": max_message_bytes, "thread_class": ReaderThread,
            "event_class": WakingEvent}
