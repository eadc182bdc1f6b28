"""A stand-in for `ServingClient.chat` while the client has none: the same call, over requests.

`ChatClient(client)` forwards everything to the real ServingClient and adds `chat(name, messages, *,
stream=True, entity=None, system=None, temperature=None, max_tokens=None, stop=None, **extra)`: an
iterator of `core.chat.ChatDelta`s with `.answer` (the `ChatAnswer`) once it ends; `close()` closes the
HTTP stream (from any thread).
"""
from __future__ import annotations

import json
import time

import requests

from jupyter_serving.core.chat import ChatCollector, stream_error
from jupyter_serving.core.errors import NotFoundError, QueryError
from jupyter_serving.core.sse import DONE, SseDecoder


def _body(task: str, messages: list[dict], system, temperature, max_tokens, stop, extra) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + list(messages)
    if task == "agent/v1/responses":
        body = {"input": msgs, **({"max_output_tokens": max_tokens} if max_tokens else {})}
    elif task == "agent/v2/chat":
        body = {"messages": msgs}
        if max_tokens:
            body.setdefault("custom_inputs", {})["max_tokens"] = max_tokens
    else:
        body = {"messages": msgs}
        for key, value in (("temperature", temperature), ("max_tokens", max_tokens), ("stop", stop)):
            if value is not None:
                body[key] = value
    for key, value in extra.items():
        if key == "custom_inputs" and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    body["stream"] = True
    return body


class Stream:
    def __init__(self, response: requests.Response, name: str, started: float):
        self.response, self.name, self.started = response, name, started
        self.collector = ChatCollector(name)
        self.answer = None
        self.stopped = False

    def __iter__(self):
        decoder = SseDecoder()
        try:
            for piece in self.response.iter_content(chunk_size=None):
                for data in decoder.feed(piece):
                    if data == DONE:
                        return
                    chunk = json.loads(data)
                    error = stream_error(chunk)
                    if error:
                        raise QueryError(error)
                    yield from self.collector.feed(chunk, (time.perf_counter() - self.started) * 1000)
        finally:
            self.answer = self.collector.answer(total_ms=(time.perf_counter() - self.started) * 1000,
                                                served_entity=self.response.headers.get("served-model-name"),
                                                stopped=self.stopped)
            self.response.close()

    def close(self):
        self.stopped = True
        self.response.close()


class ChatClient:
    def __init__(self, client):
        self._client = client

    def __getattr__(self, attr):
        return getattr(self._client, attr)

    def chat(self, name, messages, *, stream=True, entity=None, system=None, temperature=None, max_tokens=None,
             stop=None, **extra):
        task = self._client.get(name).raw.get("task") or ""
        body = _body(task, messages, system, temperature, max_tokens, stop, extra)
        path = f"/serving-endpoints/{name}" + (f"/served-models/{entity}" if entity else "") + "/invocations"
        cfg = self._client.workspace.config
        started = time.perf_counter()
        resp = requests.post(cfg.host.rstrip("/") + path, json=body, stream=True, timeout=60,
                             headers={"Authorization": f"Bearer {cfg.token}"})
        if resp.status_code == 404:
            raise NotFoundError(f"No serving endpoint named '{name}'" if not entity else resp.json().get("message"))
        if resp.status_code >= 400:
            raise QueryError(f"Query to '{name}' failed (HTTP {resp.status_code}: "
                             f"{resp.json().get('message', resp.text)[:200]})")
        return Stream(resp, name, started)
