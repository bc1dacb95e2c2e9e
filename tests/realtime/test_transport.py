"""simple-websocket's internals that app/realtime/transport.py relies on, checked on a real connection of the pinned
version: if an upgrade moves them, these fail here, loudly, instead of sockets silently waking late."""
from __future__ import annotations

import base64
import os
import socket
import struct
import threading

import pytest
import simple_websocket

from app.realtime.transport import (
    IncompatibleWebSocket,
    ReaderThread,
    SerialSocket,
    WakingEvent,
    server_options,
    wake_on_input,
)


def client_frame(text: str) -> bytes:
    """One masked text frame, as a browser sends it (RFC 6455 5.2), for payloads under 126 bytes."""
    payload, mask = text.encode(), os.urandom(4)
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.fixture
def connection():
    """A real simple_websocket.Server on one end of a socket pair, built with our options; the client end."""
    server_end, client_end = socket.socketpair()
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/notifications", "QUERY_STRING": "", "SERVER_NAME": "test",
               "SERVER_PORT": "80", "HTTP_HOST": "test", "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
               "HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": base64.b64encode(os.urandom(16)).decode(),
               "gunicorn.socket": server_end}
    ws = simple_websocket.Server(environ, **server_options(max_message_bytes=1024, ping_interval=None))
    client_end.settimeout(5)
    assert b"101" in client_end.recv(4096).split(b"\r\n", 1)[0]  # the handshake answer
    yield ws, client_end
    client_end.close()


def test_our_reader_thread_socket_and_event_are_the_ones_in_use(connection):
    ws, _ = connection
    assert isinstance(ws.thread, ReaderThread) and isinstance(ws.sock, SerialSocket)
    assert isinstance(ws.event, WakingEvent)


def test_a_client_message_and_the_close_wake_the_listener(connection):
    ws, client = connection
    woken = threading.Semaphore(0)
    assert wake_on_input(ws, woken.release) is True
    client.sendall(client_frame('{"type": "subscribe"}'))
    assert woken.acquire(timeout=5), "a client message did not wake the listener"
    assert ws.receive(timeout=1) == '{"type": "subscribe"}'
    client.close()  # the connection ends: the reader thread wakes the listener once more
    assert woken.acquire(timeout=5), "the end of the connection did not wake the listener"


def test_a_connection_without_our_event_is_refused_loudly(connection):
    ws, _ = connection
    ws.event = threading.Event()  # as if simple-websocket stopped honouring event_class
    with pytest.raises(IncompatibleWebSocket, match="pinned 1.1.0"):
        wake_on_input(ws, lambda: None)


def test_another_socket_implementation_is_left_alone():
    assert wake_on_input(object(), lambda: None) is False
