"""`ChatStream`: the deltas of one streamed chat turn as they arrive, over a `requests` response.

Iterate it for `ChatDelta`s; once it is exhausted (or closed) `answer` is the `ChatAnswer`. `close()`
ends it from any thread (a Stop button): the connection is shut down at once, which also frees the
endpoint's concurrency slot, and the answer so far is kept with `stopped=True`.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from jupyter_serving.core.chat import ChatAnswer, ChatCollector, ChatDelta, deltas_of_response, stream_error
from jupyter_serving.core.errors import BackendError, Hint, QueryError, ServingError, ServingTimeoutError, one_line
from jupyter_serving.core.sse import DONE, SseDecoder


def _shutdown(response: Any) -> None:
    """Shut the response's socket down, so that a thread blocked reading it wakes up now."""
    import socket

    raw = getattr(response, "raw", None)
    for get in (lambda: raw.connection.sock, lambda: raw._connection.sock, lambda: raw._fp.fp.raw._sock):
        try:
            sock = get()
        except AttributeError:
            continue
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


class ChatStream:
    """An iterator of `ChatDelta`s; `answer` (a `ChatAnswer`) once it ends. A context manager."""

    def __init__(self, response: Any, *, name: str, started: float, served_entity: str | None,
                 timeout: float, logs_hint: Hint, on_transport_error: Callable[[BaseException], ServingError]):
        self.name = name
        self.response = response
        self.served_entity = served_entity
        self.answer: ChatAnswer | None = None
        self.collector = ChatCollector(name)
        self._started = started
        self._timeout = timeout
        self._logs_hint = logs_hint
        self._on_transport_error = on_transport_error
        self._decoder = SseDecoder()
        self._pending: deque[ChatDelta] = deque()
        self._pieces = response.iter_content(chunk_size=None)
        self._closed = False
        self._lock = threading.Lock()

    # -- iteration -------------------------------------------------------------------------------
    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> ChatDelta:
        while True:
            if self._closed:
                self._finish(stopped=True)
                raise StopIteration
            if self._pending:
                return self._pending.popleft()
            if self.answer is not None:
                raise StopIteration
            self._read()

    def _read(self) -> None:
        import requests

        try:
            piece = next(self._pieces)
        except StopIteration:
            for data in self._decoder.close():
                self._payload(data)
            self._finish()
            return
        except (requests.RequestException, OSError, ValueError, AttributeError) as err:
            if self._closed:  # close() from another thread cut the read short
                return
            self._fail(err)
        for data in self._decoder.feed(piece):
            self._payload(data)

    def _fail(self, err: BaseException) -> None:
        import requests

        self.close()
        if isinstance(err, requests.exceptions.ConnectionError) and "Read timed out" in str(err):
            err = requests.ReadTimeout(str(err))
        if isinstance(err, requests.Timeout):
            raise ServingTimeoutError(f"Endpoint '{self.name}' sent nothing for {self._timeout:g} s mid-stream",
                                      Hint(python="The model may be stuck; retry, or raise the timeout (timeout=S).",
                                           magic="The model may be stuck; retry, or raise the timeout (--timeout S)."
                                           )) from None
        if isinstance(err, (requests.RequestException, OSError)):
            raise BackendError(f"The stream from endpoint '{self.name}' broke off ({one_line(err)[:160]})",
                               self._logs_hint) from None
        raise self._on_transport_error(err) from None

    def _payload(self, data: str) -> None:
        if data.strip() == DONE:
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.close()
            raise BackendError(f"Endpoint '{self.name}' streamed something that is not JSON ({one_line(data)[:80]})",
                               self._logs_hint) from None
        failure = stream_error(chunk)
        if failure is not None:
            self.close()
            raise QueryError(f"Endpoint '{self.name}' failed mid-stream: {one_line(failure)[:300]}", self._logs_hint)
        elapsed = (time.perf_counter() - self._started) * 1000.0
        self._pending.extend(self.collector.feed(chunk, elapsed))

    def _finish(self, stopped: bool = False) -> None:
        with self._lock:
            if self.answer is not None:
                return
            total = (time.perf_counter() - self._started) * 1000.0
            self.answer = self.collector.answer(total_ms=total, served_entity=self.served_entity, stopped=stopped)
        self.response.close()

    # -- control ---------------------------------------------------------------------------------
    def close(self) -> None:
        """End the stream now (safe from any thread); `answer` keeps what came so far."""
        if self._closed:
            return
        self._closed = True
        _shutdown(self.response)
        try:
            self.response.close()
        except Exception:  # noqa: BLE001 - a response closed twice, or mid-read in another thread
            pass
        self._finish(stopped=True)

    def collect(self) -> ChatAnswer:
        """Read the stream to its end and return the answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    @property
    def text(self) -> str:
        """The text so far (choice 0)."""
        return self.collector.text()

    def transcript(self) -> str:
        return self.collector.transcript()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # an abandoned stream frees its connection (and the endpoint's slot)
        try:
            if not self._closed and self.answer is None:
                self.response.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "ended" if self.answer is not None else "streaming"
        return f"<ChatStream from '{self.name}' ({state}): iterate it for deltas; .answer once it ends>"


class WholeAnswerStream(ChatStream):
    """What a stream request got when the server answered with one JSON body instead of events."""

    def __init__(self, body: Any, **kwargs):
        class _Done:
            def iter_content(self, chunk_size=None):
                return iter(())

            def close(self):
                pass

        super().__init__(_Done(), **kwargs)
        elapsed = (time.perf_counter() - self._started) * 1000.0
        for delta in deltas_of_response(body):
            delta = replace(delta, elapsed_ms=elapsed)
            self.collector.add(delta)
            self._pending.append(delta)
        self.collector.chunks.append(body)


__all__ = ["ChatStream", "WholeAnswerStream"]
