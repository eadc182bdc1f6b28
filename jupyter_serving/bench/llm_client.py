"""The LLM load generator's side of HTTP: streaming requests and a lean server-sent-events reader.

`StreamConnection` is bench's keep-alive HTTP/1.1 connection (`client.Connection`, httptools'
parser, no coroutine per request) that reads a `text/event-stream` answer as it arrives: every read
is timestamped once (`perf_counter_ns`, before any parsing), split into events (`data: ...` lines
ending in a blank line, however the reads cut them), and each event's JSON is read for its content
(`core.tokens.chunk_text`: chat `choices[].delta.content`, completions `choices[].text`,
ResponsesAgent and ChatAgent deltas) and its `usage`. Only the arrival times of content chunks are
kept; `llm_stats` turns them into TTFT, ITL, TPOT and E2E latency.

Requests are built once per step: `synthetic_prompts` makes prompts of N words from a fixed
vocabulary of short common words (about one token each, for BPE tokenizers and for
`core.tokens.count_tokens` alike), and each becomes the bytes of one HTTP request, chat body with
`"stream": true` and `max_tokens` (and `custom_inputs`, when given, passed through).
"""
from __future__ import annotations

import asyncio
import json
import random
import ssl
from dataclasses import dataclass
from typing import Any

from jupyter_serving.bench.client import Connection, ConnectionListener, perf_ns
from jupyter_serving.bench.target import USER_AGENT, Target, auth_headers, invocation_url
from jupyter_serving.core.tokens import chunk_text, count_tokens, usage_of

VOCABULARY = (
    "the of and to in is was for on with as by at from his her they this that have not are but had "
    "one all were we when your can said there use each which she do how their if will up other about "
    "out many then them these so some would make like him into time has look two more write go see "
    "number no way could people my than first water been call who oil its now find long down day did "
    "get come made may part over new sound take only little work know place year live me back give "
    "most very after thing our just name good man think say great where help through much before line "
    "right too mean old any same tell boy follow came want show also around form three small set put "
    "end does").split()
DEFAULT_PROMPTS = 32  # distinct prompts a step cycles through (a server's prefix cache sees variety)
_ERROR_BODY_LIMIT = 400
_CONTENT_TYPE = b"content-type"
_DONE = b"[DONE]"
_decode = json.JSONDecoder().raw_decode


def _content(chunk: dict) -> bool:
    """Whether a stream chunk carries text: chat's `choices[0].delta.content` read directly (the usual
    chunk), every other dialect through `core.tokens.chunk_text`."""
    choices = chunk.get("choices")
    if isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return bool(delta["content"])
    return bool(chunk_text(chunk))


def synthetic_prompts(tokens: int, count: int = DEFAULT_PROMPTS, seed: int = 0) -> list[str]:
    """`count` prompts of `tokens` words each, drawn from VOCABULARY (reproducible with `seed`)."""
    if tokens < 1:
        raise ValueError(f"prompt tokens must be at least 1, got {tokens}")
    rng = random.Random(seed)
    return [" ".join(rng.choice(VOCABULARY) for _ in range(tokens)) for _ in range(max(1, count))]


def chat_body(prompt: str, max_tokens: int, *, model: str | None = None,
              custom_inputs: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """A streaming chat request: Databricks' /invocations body, or OpenAI's with `model`."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], "max_tokens": int(max_tokens),
                            "stream": True}
    if model is not None:
        body = {"model": model, **body}
    if custom_inputs:
        body["custom_inputs"] = dict(custom_inputs)
    body.update(extra or {})
    return body


def stream_request_bytes(target: Target, body: bytes) -> bytes:
    """The whole HTTP/1.1 POST asking for a `text/event-stream` answer."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.is_tls else 80
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {host if target.port == default_port else f'{host}:{target.port}'}",
             f"User-Agent: {USER_AGENT}", "Content-Type: application/json", "Accept: text/event-stream",
             f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in target.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True)
class LlmTarget:
    """Where the streams go (`target`: URL checks, host, port) and the pre-built requests a step
    cycles through, with the prompt tokens each sends (an estimate; usage counts win)."""

    target: Target
    requests: tuple[bytes, ...]
    input_tokens: tuple[int, ...]
    prompt_tokens: int
    max_tokens: int

    @property
    def url(self) -> str:
        return self.target.url


def chat_completions_url(host: str) -> str:
    """Databricks' OpenAI-compatible chat route (the endpoint goes in the body's `model`)."""
    return host.rstrip("/") + "/serving-endpoints/chat/completions"


def build_llm_target(host: str, token: str | None, endpoint: str, *, prompt_tokens: int, max_tokens: int,
                     custom_inputs: dict | None = None, entity: str | None = None, openai: bool = False,
                     prompts: int = DEFAULT_PROMPTS, seed: int = 0) -> LlmTarget:
    """Checked target (loopback http or https only) and the requests of synthetic prompts."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if openai and entity:
        raise ValueError("the OpenAI-compatible route serves the endpoint's routing: no served entity")
    url = chat_completions_url(host) if openai else invocation_url(host, endpoint, entity)
    target = Target.from_url(url, b"", auth_headers(token))
    texts = synthetic_prompts(prompt_tokens, prompts, seed)
    bodies = [json.dumps(chat_body(t, max_tokens, model=endpoint if openai else None,
                                   custom_inputs=custom_inputs), separators=(",", ":")).encode() for t in texts]
    return LlmTarget(target, tuple(stream_request_bytes(target, b) for b in bodies),
                     tuple(count_tokens(t) for t in texts), int(prompt_tokens), int(max_tokens))


class StreamConnection(Connection):
    """One keep-alive connection carrying one streamed request at a time (see the module docstring)."""

    def __init__(self, listener: ConnectionListener):
        super().__init__(listener)
        self.start(b"", 0, 0, False, 0, send=False)

    def start(self, request: bytes, start_ns: int, now_ns: int, measured: bool, input_tokens: int,
              send: bool = True) -> None:
        """Send `request`; its latencies count from `start_ns` (the intended send time in an open loop)."""
        self.start_ns = start_ns
        self.measured = measured
        self.input_tokens = input_tokens
        self.chunk_ns: list[int] = []
        self.usage: tuple[int, int] | None = None
        self.stream_error: str | None = None
        self.content_type = b""
        self.done = False
        self.recv_ns = 0
        self._buffer = b""
        if send:
            self.send(request, now_ns)

    def data_received(self, data: bytes) -> None:
        self.recv_ns = perf_ns()  # one timestamp per read, before any parsing
        super().data_received(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 12 and name.lower() == _CONTENT_TYPE:
            self.content_type = value.lower()
        else:
            super().on_header(name, value)

    def on_body(self, body: bytes) -> None:
        if self.status != 200 or not self.content_type.startswith(b"text/event-stream"):
            if len(self.error_body) < _ERROR_BODY_LIMIT:
                self.error_body += body[: _ERROR_BODY_LIMIT - len(self.error_body)]
            return
        if not self._buffer and body.find(b"\n\n") == len(body) - 2 and b"\r" not in body:
            self._event(body[:-2])  # the usual piece: exactly one event
            return
        buffer = self._buffer + body if self._buffer else body
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            self._event(buffer[start:end])
            start = end + 2
        self._buffer = buffer[start:]

    def _event(self, raw: bytes) -> None:
        if raw.startswith(b"data:") and b"\n" not in raw:
            data = raw[5:].strip()
        else:  # several lines: data lines joined, comments (": ping") and other fields skipped
            data = b"\n".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return
        if data == _DONE:
            self.done = True
            return
        try:
            chunk = _decode(data.decode("utf-8"))[0]
        except ValueError:  # also UnicodeDecodeError
            return
        if not isinstance(chunk, dict):
            return
        if "error_code" in chunk or chunk.get("error"):
            self.stream_error = json.dumps(chunk)[:_ERROR_BODY_LIMIT]
            return
        if _content(chunk):
            self.chunk_ns.append(self.recv_ns)
        if b'usage"' in data:
            usage = usage_of(chunk)
            if usage is not None:
                self.usage = usage

    def failure(self) -> tuple[str, str] | None:
        """Why a 200 answer is not a successful stream: (kind, detail), or None when it is one."""
        if not self.content_type.startswith(b"text/event-stream"):
            return "not streamed", (f"a {self.content_type.decode('latin-1') or 'non-stream'} answer, not "
                                    "server-sent events: does the model stream?")
        if self.stream_error is not None:
            return "stream", self.stream_error
        if not self.chunk_ns:
            return "empty", "the stream carried no content"
        return None


async def open_stream_connection(target: Target, address: tuple[str, int], listener: ConnectionListener,
                                 ssl_context: ssl.SSLContext | None, timeout_s: float) -> StreamConnection:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: StreamConnection(listener), address[0], address[1], ssl=ssl_context,
                               server_hostname=target.host if ssl_context is not None else None),
        timeout_s)
    return conn


__all__ = ["LlmTarget", "StreamConnection", "VOCABULARY", "build_llm_target", "chat_body",
           "chat_completions_url", "open_stream_connection", "stream_request_bytes", "synthetic_prompts"]
