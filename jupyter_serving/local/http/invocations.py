"""The data plane: a bare ASGI front for `POST /serving-endpoints/{name}[/served-models/{entity}]/invocations`.

Invocations are the hot path, so no web-framework routing, validation or dependency injection runs
per request: the front matches the path itself, authenticates, checks CAN_QUERY and hands the body
to the gateway. Everything else goes to the REST app.
"""
from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jupyter_serving.local.engine import Engine
from jupyter_serving.local.gateway import Gateway
from jupyter_serving.local.http.deps import authenticate, endpoint_named
from jupyter_serving.local.http.errors import HANDLED, error_response

INVOKE_PATH = re.compile(r"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations/?$")


def with_invocations(app: FastAPI, engine: Engine, gateway: Gateway) -> ASGIApp:
    """`app` behind the invocations fast path."""

    async def invoke(scope: Scope, receive: Receive, send: Send, name: str, entity: str | None) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = Headers(scope=scope)
        try:
            caller = authenticate(engine, headers.get("authorization", ""))
            doc = endpoint_named(engine, name, caller, "CAN_QUERY")
            response = await gateway.invoke(doc, b"".join(chunks), headers.get("content-type"), caller.user, entity)
        except HANDLED as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INVOKE_PATH.match(scope["path"])
            if match:
                await invoke(scope, receive, send, match.group(1), match.group(2))
                return
        await app(scope, receive, send)

    return front
