"""A minimal keep-alive HTTP/1.1 client connection: asyncio Protocol + httptools' C parser.

Why not aiohttp/httpx/requests/databricks-sdk: per request they cost 5-50x more client CPU (see
reference/perf-baselines.md), so the client, not the server, would be what a sweep measures; and
the SDK retries 429s, hiding exactly what a sizing run must count. Here a request is one
`transport.write` of pre-built bytes, and the response is parsed by callbacks with no coroutine
or future per request. The load drivers (loadgen.py) react to `on_response` directly.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Protocol as TypingProtocol

import httptools

from jupyter_serving.bench.target import Target

_SERVED_MODEL_HEADER = b"served-model-name"
_ERROR_BODY_LIMIT = 400  # bytes of a non-200 body kept, to show the server's message

perf_ns = time.perf_counter_ns


class ConnectionListener(TypingProtocol):
    def on_response(self, conn: Connection, now_ns: int) -> None: ...

    def on_connection_lost(self, conn: Connection, exc: Exception | None) -> None: ...


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection carrying one request at a time."""

    def __init__(self, listener: ConnectionListener):
        self.listener = listener
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()  # resolved in connection_lost
        self.busy = False
        self.sent_ns = 0       # when the current request was written
        self.intended_ns = 0   # open loop: when it should have been written
        self.status = 0
        self.served_model: bytes | None = None
        self.error_body = b""
        self.keep_alive = True

    # -- sending ---------------------------------------------------------------------------------

    def send(self, request: bytes, now_ns: int) -> None:
        self.busy = True
        self.sent_ns = now_ns
        self.served_model = None
        self.error_body = b""
        self.transport.write(request)

    def close(self) -> None:
        """Graceful close when idle, abort (RST) when a request is still in flight."""
        if self.transport is not None and not self.lost.done():
            if self.busy:
                self.transport.abort()
            else:
                self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Without TCP_NODELAY small requests can wait ~40 ms for delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.status = -1  # reported as a "protocol" error by the listener
            self.transport.abort()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(None)
        self.listener.on_connection_lost(self, exc)

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # Cheap length test first: this runs for every header of every response.
        if len(name) == 17 and name.lower() == _SERVED_MODEL_HEADER:
            self.served_model = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200 and len(self.error_body) < _ERROR_BODY_LIMIT:
            self.error_body += body[: _ERROR_BODY_LIMIT - len(self.error_body)]

    def on_message_complete(self) -> None:
        now = perf_ns()
        self.busy = False
        self.keep_alive = self.parser.should_keep_alive()
        self.listener.on_response(self, now)


def client_ssl_context(target: Target, context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    if not target.is_tls:
        return None
    return context or ssl.create_default_context()


async def open_connection(target: Target, address: tuple[str, int], listener: ConnectionListener,
                          ssl_context: ssl.SSLContext | None, timeout_s: float) -> Connection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(
            lambda: Connection(listener), address[0], address[1], ssl=ssl_context,
            server_hostname=target.host if ssl_context is not None else None,
        ),
        timeout_s,
    )
    return conn
