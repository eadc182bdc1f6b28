"""A fake streaming chat endpoint with known timing, to check the LLM load generator against.

    python tests/fake_sse_server.py --port 0 [--max-concurrency 4] [--usage | --no-usage]

Every POST is answered like a Databricks chat endpoint streaming: `200 text/event-stream`, chunked,
one `chat.completion.chunk` event per token (`choices[0].delta.content` = "tok0 ", "tok1 ", ...),
a final chunk with `finish_reason` and `usage` (unless --no-usage), then `data: [DONE]`. The body's
`max_tokens` and `custom_inputs` {"ttft_ms", "itl_ms", "tokens"} pace it as tests/genai_models.py's
DelayedChatModel does: `ttft_ms` before the first token, `itl_ms` before each later one. With no
delay the whole answer is written at once (pre-built per token count: the server costs next to
nothing, for benchmarks/llm_ceiling.py). `custom_inputs.fail` = "json" answers 200 application/json,
"error" ends the stream with an error event after the first token. Above `--max-concurrency` streams
at once: 429 REQUEST_LIMIT_EXCEEDED.

It prints `LISTENING <port>` once it accepts connections. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import httptools


def _head(status: str, content_type: str, extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}").encode("latin-1")


def _plain(status: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return _head(status, "application/json", f"content-length: {len(data)}\r\n\r\n") + data


_RATE_LIMITED = _plain("429 Too Many Requests", {"error_code": "REQUEST_LIMIT_EXCEEDED",
                                                 "message": "Exceeded max concurrency; retry later."})
_STREAM_HEAD = _head("200 OK", "text/event-stream", "transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n")


def _frame(payload: bytes) -> bytes:
    """One HTTP chunk carrying `payload`."""
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _event(chunk: dict | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk, separators=(",", ":"))
    return _frame(f"data: {data}\n\n".encode())


def token_event(i: int, last: bool) -> bytes:
    text = f"tok{i}" if last else f"tok{i} "
    return _event({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]})


def end_events(prompt_tokens: int, tokens: int, usage: bool) -> bytes:
    final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": "fake",
             "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "stop"}]}
    if usage:
        final["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                          "total_tokens": prompt_tokens + tokens}
    return _event(final) + _event("[DONE]") + b"0\r\n\r\n"


class Server:
    def __init__(self, max_concurrency: int | None, usage: bool):
        self.max_concurrency = max_concurrency
        self.usage = usage
        self.streaming = 0
        self._whole: dict[tuple[int, int], bytes] = {}

    def whole(self, prompt_tokens: int, tokens: int) -> bytes:
        key = (prompt_tokens, tokens)
        if key not in self._whole:
            self._whole[key] = (_STREAM_HEAD + b"".join(token_event(i, i == tokens - 1) for i in range(tokens))
                                + end_events(prompt_tokens, tokens, self.usage))
        return self._whole[key]


def _plan(body: bytes) -> tuple[int, int, float, float, str | None]:
    """(prompt words, tokens, ttft s, itl s, failure) of a request body."""
    request = json.loads(body or b"{}")
    options = request.get("custom_inputs") or {}
    tokens = int(options.get("tokens") or request.get("max_tokens") or 8)
    tokens = min(tokens, int(request.get("max_tokens") or tokens))
    words = sum(len(str(m.get("content", "")).split()) for m in request.get("messages") or [])
    return (words, tokens, float(options.get("ttft_ms") or 0) / 1000, float(options.get("itl_ms") or 0) / 1000,
            options.get("fail"))


class Connection(asyncio.Protocol):
    def __init__(self, server: Server):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.body = b""
        self.queue: asyncio.Queue = asyncio.Queue()
        self.worker = None

    def connection_made(self, transport):
        self.transport = transport
        self.worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc):
        self.transport = None
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_body(self, body):
        self.body += body

    def on_message_complete(self):
        self.queue.put_nowait(self.body)
        self.body = b""

    async def _serve(self):
        while True:
            body = await self.queue.get()
            server = self.server
            if server.max_concurrency is not None and server.streaming >= server.max_concurrency:
                self._write(_RATE_LIMITED)
                continue
            server.streaming += 1
            try:
                await self._stream(*_plan(body))
            finally:
                server.streaming -= 1

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def _stream(self, words: int, tokens: int, ttft: float, itl: float, fail: str | None):
        if fail == "json":
            self._write(_plain("200 OK", {"choices": [{"message": {"content": "not a stream"}}]}))
            return
        if not ttft and not itl and fail is None:
            self._write(self.server.whole(words, tokens))
            return
        self._write(_STREAM_HEAD)
        for i in range(tokens):
            await asyncio.sleep(ttft if i == 0 else itl)
            self._write(token_event(i, i == tokens - 1))
            if fail == "error":
                self._write(_event({"error_code": "INTERNAL_ERROR", "message": "the model broke"})
                            + _event("[DONE]") + b"0\r\n\r\n")
                return
        self._write(end_events(words, tokens, self.server.usage))


async def serve(port: int, max_concurrency: int | None, usage: bool) -> None:
    loop = asyncio.get_running_loop()
    server = Server(max_concurrency, usage)
    listener = await loop.create_server(lambda: Connection(server), "127.0.0.1", port, backlog=1024)
    print(f"LISTENING {listener.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-concurrency", type=int)
    parser.add_argument("--no-usage", dest="usage", action="store_false", help="no usage in the final chunk")
    args = parser.parse_args()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(args.port, args.max_concurrency, args.usage))


if __name__ == "__main__":
    sys.exit(main())
