"""Server-sent events as they pass through the gateway: read, never held back.

A streamed answer goes to the client piece by piece as the model server sends it; `StreamMeter`
only looks at each piece on its way (when something needs the stream's content: token counts for
usage tracking, token rate limits and provisioned throughput, or an inference-table row). It splits
the pieces into events (`data: ...` lines ending in a blank line, however the pieces cut them),
counts the output tokens of each chunk and keeps the chunks for the payload log, bounded in size.
"""
from __future__ import annotations

import json

from jupyter_serving.core.tokens import chunk_text, count_tokens, usage_of

DONE = b"[DONE]"
MAX_KEPT_BYTES = 1024 * 1024  # what one stream keeps of its chunks for the inference table


def event(payload: dict) -> bytes:
    """One server-sent event carrying `payload` as JSON."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class StreamMeter:
    """Counts the tokens of a stream of server-sent events, and keeps its chunks (bounded)."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.buffer = b""
        self.output_tokens = 0
        self.usage: tuple[int, int] | None = None
        self.chunks: list = []
        self.kept_bytes = 0
        self.truncated = False
        self.error: dict | None = None

    def feed(self, piece: bytes) -> None:
        buffer = self.buffer + piece if self.buffer else piece
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            self._event(buffer[start:end])
            start = end + 2
        self.buffer = buffer[start:]

    def _event(self, raw: bytes) -> None:
        data = b"\n".join(line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data or data == DONE:
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        if isinstance(chunk, dict):
            if "error_code" in chunk and "message" in chunk:
                self.error = chunk
            self.output_tokens += count_tokens(chunk_text(chunk))
            usage = usage_of(chunk)
            if usage is not None:
                self.usage = usage
        if self.keep:
            if self.kept_bytes + len(data) <= MAX_KEPT_BYTES:
                self.chunks.append(chunk)
                self.kept_bytes += len(data)
            else:
                self.truncated = True

    @property
    def tokens_out(self) -> int:
        return self.usage[1] if self.usage is not None else self.output_tokens
