"""A fake scoring server with known behaviour, to check the load generator against.

    python tests/fakeserver.py --port 0 --sleep-ms 20 --max-concurrency 4

It answers every POST like a Databricks endpoint: 200 {"predictions": [0]} with a
`served-model-name` header after `--sleep-ms`; 429 REQUEST_LIMIT_EXCEEDED when `--max-concurrency`
requests are already admitted; 400 for the endpoint named `stopped`. `--parallelism P` lets only P
requests run at once and queues the rest, like a model server with P workers. GET /stats returns
{"open_connections", "in_flight", "requests"}; GET /ping returns 200.

It prints `LISTENING <port>` once it accepts connections. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
from collections import deque

import httptools

STOPPED_ENDPOINT = "stopped"


def _response(status: int, reason: str, body: bytes, served_model: str | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json",
            f"content-length: {len(body)}"]
    if served_model:
        head.append(f"served-model-name: {served_model}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


_RATE_LIMITED = _response(429, "Too Many Requests", json.dumps({
    "error_code": "REQUEST_LIMIT_EXCEEDED",
    "message": "Exceeded max concurrency of the served entity; retry later."}).encode())
_STOPPED = _response(400, "Bad Request", json.dumps({
    "error_code": "INVALID_STATE", "message": "Endpoint is stopped; start it first."}).encode())
_PING = _response(200, "OK", b"{}")
_NOT_FOUND = _response(404, "Not Found", b'{"error_code":"NOT_FOUND"}')


class FakeModel:
    """Admission (429 above the cap), queueing (parallelism) and timing shared by connections."""

    def __init__(self, sleep_s: float, max_concurrency: int | None, parallelism: int | None,
                 served_model: str, body: bytes):
        self.sleep_s = sleep_s
        self.max_concurrency = max_concurrency
        self.parallelism = parallelism
        self.served_model = served_model
        self.body = body
        self.admitted = 0      # running + queued
        self.running = 0
        self.queue: deque = deque()
        self.open_connections = 0
        self.requests = 0
        self._ok_cache: dict[str, bytes] = {}

    def ok_response(self, url: bytes) -> bytes:
        # .../served-models/{entity}/invocations answers as that entity.
        parts = url.decode("latin-1").split("?")[0].split("/")
        name = parts[parts.index("served-models") + 1] if "served-models" in parts[:-1] else self.served_model
        cached = self._ok_cache.get(name)
        if cached is None:
            cached = self._ok_cache[name] = _response(200, "OK", self.body, name)
        return cached

    def stats(self) -> bytes:
        return _response(200, "OK", json.dumps({
            "open_connections": self.open_connections, "in_flight": self.admitted,
            "requests": self.requests}).encode())


class FakeConnection(asyncio.Protocol):
    def __init__(self, model: FakeModel):
        self.model = model
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.pending: deque = deque()  # requests of this connection, answered in order
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport
        self.model.open_connections += 1

    def connection_lost(self, exc):
        self.model.open_connections -= 1
        self.transport = None

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url):
        self.url += url

    def on_message_complete(self):
        self.pending.append((self.parser.get_method(), self.url, self.parser.should_keep_alive()))
        self.url = b""
        if not self.busy:
            self._next()

    def _next(self):
        if not self.pending or self.transport is None:
            return
        method, url, keep_alive = self.pending.popleft()
        model = self.model
        if method == b"GET":
            self._reply(model.stats() if url.startswith(b"/stats") else _PING, keep_alive)
            return
        if method != b"POST":
            self._reply(_NOT_FOUND, keep_alive)
            return
        model.requests += 1
        if f"/serving-endpoints/{STOPPED_ENDPOINT}/".encode() in url:
            self._reply(_STOPPED, keep_alive)
            return
        if model.max_concurrency is not None and model.admitted >= model.max_concurrency:
            self._reply(_RATE_LIMITED, keep_alive)
            return
        if model.sleep_s <= 0 and model.parallelism is None:
            self._reply(model.ok_response(url), keep_alive)
            return
        model.admitted += 1
        self.busy = True
        job = (self, url, keep_alive)
        if model.parallelism is not None and model.running >= model.parallelism:
            model.queue.append(job)
        else:
            self._start(job)

    def _start(self, job):
        model = self.model
        model.running += 1
        asyncio.get_running_loop().call_later(model.sleep_s, job[0]._finish, job)

    def _finish(self, job):
        model = self.model
        model.running -= 1
        model.admitted -= 1
        self.busy = False
        if model.queue:
            queued = model.queue.popleft()
            queued[0]._start(queued)
        self._reply(model.ok_response(job[1]), job[2])

    def _reply(self, response: bytes, keep_alive: bool):
        if self.transport is None:
            return
        self.transport.write(response)
        if not keep_alive:
            self.transport.close()
            return
        self._next()


async def serve(host: str, port: int, model: FakeModel, ssl_context=None) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"fakeserver binds to loopback only, not {host}")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeConnection(model), host, port, ssl=ssl_context,
                                      backlog=1024)
    done = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(None))
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sleep-ms", type=float, default=0.0)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--served-model-name", default="fake-1")
    parser.add_argument("--body", default='{"predictions": [0]}')
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--uvloop", action="store_true", help="use uvloop when installed")
    args = parser.parse_args(argv)
    ssl_context = None
    if args.certfile:
        import ssl
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)
    model = FakeModel(args.sleep_ms / 1000.0, args.max_concurrency, args.parallelism,
                      args.served_model_name, args.body.encode())
    if args.uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(serve(args.host, args.port, model, ssl_context))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
