"""The gateway's client to a model server: keep-alive HTTP/1.1 over its Unix socket.

Why not aiohttp: per request it cost about half of the gateway's own CPU time (sessions, request
and response objects, stream readers, a URL parse). Here a request is one `transport.write` of bytes
built with a few concatenations, and the answer is parsed by httptools' C parser straight into the
connection, which resolves one future when the message is complete.

One `UpstreamPool` per model server holds its idle connections (most recently used first). A
connection carries one request at a time and goes back to the pool only after its whole answer was
read and the server kept it alive; one whose request failed, timed out or was cancelled (the caller
went away) is aborted, never reused with a half-read answer in it.

`request_stream` hands over the answer's body as it arrives (server-sent events from a streaming
model): it returns once the head is in, with an async iterator of the body's pieces, each given to
the caller as soon as the parser has it — no buffering, no task per piece.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

import httptools

_CONTENT_TYPE = b"content-type"
_MAX_IDLE_S = 60.0  # below the model server's keep-alive timeout (120 s): never reuse one it may be closing
_JOIN_LIMIT = 256 * 1024  # bodies up to this size go out in the same write as the head


class UpstreamClosed(ConnectionError):
    """The connection failed or the server closed it before the whole answer arrived."""

    def __init__(self, message: str, answered: bool = False):
        super().__init__(message)
        self.answered = answered  # whether any of the answer had arrived (then a retry may repeat work)


class _Connection(asyncio.Protocol):
    """One connection to a model server; one request at a time."""

    def __init__(self, pool: UpstreamPool):
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.status = 0
        self.content_type = b""
        self.chunks: list[bytes] = []
        self.started = False  # any byte of the current answer received
        self.idle_since = 0.0
        self.streaming = False  # the current request hands its body over piece by piece
        self.pieces: deque = deque()  # streamed body pieces not yet taken (None marks the end)
        self.piece_waiter: asyncio.Future | None = None

    def _hand_over(self, piece) -> None:
        self.pieces.append(piece)
        waiter, self.piece_waiter = self.piece_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def begin(self, data: bytes, body: bytes, waiter: asyncio.Future, streaming: bool = False) -> None:
        self.waiter, self.status, self.content_type, self.chunks, self.started = waiter, 0, b"", [], False
        self.streaming = streaming
        if streaming:
            self.pieces, self.piece_waiter = deque(), None
        self.transport.write(data)
        if body:
            self.transport.write(body)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"The model server sent a malformed answer: {exc}", answered=True))
            self.abort()

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.pool.discard(self)
        if self.streaming and self.waiter is None:
            self._hand_over(UpstreamClosed(f"The model server closed the connection mid-answer ({exc or 'EOF'}).",
                                           answered=True))
        if self.waiter is not None:
            self._fail(UpstreamClosed(f"The model server closed the connection ({exc or 'EOF'}).",
                                      answered=self.started))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == _CONTENT_TYPE:
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.streaming:  # the caller takes over at the head; the body follows piece by piece
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.streaming:
            self._hand_over(body)
        else:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closed = True  # taken out of the pool when the request ends
        if self.streaming:
            self._hand_over(None)
            return
        waiter, self.waiter = self.waiter, None
        if waiter is None:  # an answer nobody asked for: the stream is out of step
            self.abort()
        elif not waiter.done():
            waiter.set_result(None)


class UpstreamPool:
    """Keep-alive connections to the HTTP server on one Unix socket."""

    def __init__(self, path: str, host: str = "model"):
        self.path = path
        self.closed = False
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._host = host.encode()
        self._heads: dict[tuple, bytes] = {}

    def _head(self, method: str, target: str, content_type: str | None) -> bytes:
        key = (method, target, content_type)
        head = self._heads.get(key)
        if head is None:
            head = f"{method} {target} HTTP/1.1\r\nHost: ".encode() + self._host + b"\r\n"
            if content_type is not None:
                head += b"Content-Type: " + content_type.encode("latin-1") + b"\r\n"
            if len(self._heads) < 64:
                self._heads[key] = head
        return head

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_unix_connection(lambda: _Connection(self), self.path)
        except OSError as exc:
            raise UpstreamClosed(f"Cannot connect to the model server: {exc}") from None
        return conn

    def _take(self) -> _Connection | None:
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _MAX_IDLE_S:
                return conn
            conn.abort()
        return None

    async def request(self, method: str, target: str, body: bytes = b"", content_type: str | None = None,
                      timeout: float = 300.0) -> tuple[int, bytes, bytes]:
        """(status, body, content type) of one request. Raises UpstreamClosed, TimeoutError."""
        if self.closed:
            raise UpstreamClosed("The model server's connection pool is closed.")
        conn = self._take()
        if conn is not None:
            try:
                return await self._exchange(conn, method, target, body, content_type, timeout)
            except UpstreamClosed as exc:
                if exc.answered or self.closed:
                    raise
                # A kept-alive connection the server closed before reading our request: try a new one.
        return await self._exchange(await self._connect(), method, target, body, content_type, timeout)

    def _message(self, method: str, target: str, body: bytes, content_type: str | None) -> tuple[bytes, bytes]:
        head = self._head(method, target, content_type)
        if body or method != "GET":
            head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        else:
            head += b"\r\n"
        if len(body) <= _JOIN_LIMIT:
            return head + body, b""
        return head, body

    async def request_stream(self, method: str, target: str, body: bytes, content_type: str | None,
                             timeout: float) -> tuple[int, bytes, AsyncIterator[bytes]]:
        """(status, content type, body pieces) of one request, returned once the answer's head is in.

        The iterator yields the body as it arrives; `timeout` bounds the wait for the head and for each
        piece. Close it (`aclose`) when stopping early: the connection is then aborted, not reused."""
        if self.closed:
            raise UpstreamClosed("The model server's connection pool is closed.")
        conn = self._take() or await self._connect()
        head, rest = self._message(method, target, body, content_type)
        await self._answer_head(conn, head, rest, timeout, streaming=True)
        return conn.status, conn.content_type, self._pieces(conn, timeout)

    async def _answer_head(self, conn: _Connection, head: bytes, rest: bytes, timeout: float,
                           streaming: bool) -> None:
        """Send a request on `conn` and wait for its answer (its head only, when `streaming`)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, conn, waiter, timeout)
        self._busy.add(conn)
        try:
            conn.begin(head, rest, waiter, streaming)
            await waiter
        except BaseException:  # failed, timed out or cancelled: the rest of the answer may still come
            conn.abort()
            self._busy.discard(conn)
            raise
        finally:
            timer.cancel()

    def _release(self, conn: _Connection, complete: bool) -> None:
        """A connection whose request ended: back to the pool if its answer was whole and it stays open."""
        self._busy.discard(conn)
        if complete and not conn.closed and not self.closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.abort()

    async def _pieces(self, conn: _Connection, timeout: float) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        complete = False
        try:
            while True:
                while not conn.pieces:
                    waiter = conn.piece_waiter = loop.create_future()
                    timer = loop.call_later(timeout, _expire, conn, waiter, timeout)
                    try:
                        await waiter
                    finally:
                        timer.cancel()
                piece = conn.pieces.popleft()
                if piece is None:
                    complete = True
                    return
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            conn.streaming = False
            self._release(conn, complete)

    async def _exchange(self, conn: _Connection, method: str, target: str, body: bytes,
                        content_type: str | None, timeout: float) -> tuple[int, bytes, bytes]:
        head, rest = self._message(method, target, body, content_type)
        await self._answer_head(conn, head, rest, timeout, streaming=False)
        chunks, conn.chunks = conn.chunks, []
        answer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._release(conn, True)
        return conn.status, answer, conn.content_type

    def discard(self, conn: _Connection) -> None:
        if not conn.waiter:
            try:
                self._idle.remove(conn)
            except ValueError:
                pass

    def close(self) -> None:
        """Close every connection; requests in flight fail with UpstreamClosed."""
        self.closed = True
        for conn in [*self._idle, *self._busy]:
            conn.abort()
        self._idle.clear()


def _expire(conn: _Connection, waiter: asyncio.Future, timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"No answer within {timeout:g} s."))
    conn.abort()
