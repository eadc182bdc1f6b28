"""Server-sent events on the client side: the `data` payloads of a stream, however its bytes are cut.
Pure: no I/O."""
from __future__ import annotations

DONE = "[DONE]"  # the payload that ends an OpenAI-style stream


class SseDecoder:
    """The `data` payloads of a server-sent-event stream, fed in pieces cut anywhere (even inside a
    UTF-8 character): `feed(bytes)` returns the payloads of the events it completed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[str]:
        buffer = self._buffer + piece
        hold = b""
        if buffer.endswith(b"\r"):  # maybe the first half of a CRLF: wait for the next piece
            buffer, hold = buffer[:-1], b"\r"
        *lines, rest = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buffer = rest + hold
        out: list[str] = []
        for line in lines:
            self._line(line.decode("utf-8", errors="replace"), out)
        return out

    def close(self) -> list[str]:
        """The payload of a last event that no blank line ended."""
        out: list[str] = []
        if self._buffer:
            self._line(self._buffer.rstrip(b"\r").decode("utf-8", errors="replace"), out)
            self._buffer = b""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[str]) -> None:
        if not line:
            if self._data:
                out.append("\n".join(self._data))
                self._data = []
            return
        if line.startswith(":"):
            return  # a comment (keep-alive)
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)


__all__ = ["DONE", "SseDecoder"]
