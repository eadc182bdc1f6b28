"""A tiny OpenAI-compatible server for tests: `/v1/chat/completions` (plain and streamed as server-sent
events), `/v1/completions` and `/v1/embeddings`, on 127.0.0.1 in a thread of the test process.

It answers only requests whose `Authorization: Bearer` header carries the key it was given (401 with
OpenAI's error shape otherwise) and records every request it saw (path, headers, body). Tests steer
it with events, never sleeps: `hold` makes a stream stop after its first chunk (and a plain chat
answer wait) until `release` is set; `disconnected` is set when a client left a stream early.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.conftest import poll

HOLD_LIMIT_S = 20.0  # a held answer goes on by itself after this long (so no test can hang on it)


class OpenAIStub:
    def __init__(self, api_key: str):
        self.api_key = api_key
        self.requests: list[dict] = []
        self.hold = False
        self.release = threading.Event()
        self.released_in_time: bool | None = None  # whether a held answer was released before HOLD_LIMIT_S
        self.disconnected = threading.Event()
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # lifecycle
    def start(self) -> OpenAIStub:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        poll(lambda: self._server.started, 20, 0.05, "the OpenAI stub to listen")
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)

    # helpers
    async def _record(self, request: Request) -> tuple[dict | None, JSONResponse | None]:
        body = await request.json()
        self.requests.append({"path": request.url.path, "authorization": request.headers.get("authorization"),
                              "organization": request.headers.get("openai-organization"), "body": body})
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return None, JSONResponse({"error": {"message": "Incorrect API key provided.", "type":
                                                 "invalid_request_error", "code": "invalid_api_key"}}, 401)
        return body, None

    async def _wait_release(self) -> None:
        self.released_in_time = await asyncio.to_thread(self.release.wait, HOLD_LIMIT_S)

    @staticmethod
    def _chunk(model: str, delta: dict, finish: str | None = None) -> str:
        chunk = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(chunk)}\n\n"

    # routes
    async def chat(self, request: Request):
        body, refused = await self._record(request)
        if refused:
            return refused
        text = f"stub: {body['messages'][-1]['content']}"
        if body.get("stream"):
            return StreamingResponse(self._stream(body["model"], text), media_type="text/event-stream")
        if self.hold:
            await self._wait_release()
        return JSONResponse({
            "id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split()), "total_tokens": 3 + len(text.split())},
        })

    async def _stream(self, model: str, text: str):
        done = False
        try:
            yield self._chunk(model, {"role": "assistant", "content": ""})
            for index, word in enumerate(text.split()):
                yield self._chunk(model, {"content": word if index == 0 else " " + word})
                if index == 0 and self.hold:
                    await self._wait_release()
            yield self._chunk(model, {}, "stop")
            yield "data: [DONE]\n\n"
            done = True
        finally:
            if not done:
                self.disconnected.set()

    async def completions(self, request: Request):
        body, refused = await self._record(request)
        if refused:
            return refused
        return JSONResponse({"id": "cmpl-stub", "object": "text_completion", "created": int(time.time()),
                             "model": body["model"],
                             "choices": [{"index": 0, "text": f"stub: {body['prompt']}", "finish_reason": "stop"}]})

    async def embeddings(self, request: Request):
        body, refused = await self._record(request)
        if refused:
            return refused
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"object": "list", "model": body["model"],
                             "data": [{"object": "embedding", "index": i, "embedding": [float(len(t)), 0.5, -0.5]}
                                      for i, t in enumerate(texts)],
                             "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})
