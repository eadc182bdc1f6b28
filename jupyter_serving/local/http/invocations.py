"""The data plane: a bare ASGI front for `POST /serving-endpoints/{name}[/served-models/{entity}]/invocations`.

Invocations are the hot path, so no web-framework routing, validation or dependency injection runs
per request: the front matches the path itself, authenticates, checks CAN_QUERY and hands the body
to the gateway. Everything else goes to the REST app.

Every answer is JSON, errors in Databricks' shape (`error_code`, `message`, `details`), and none
closes the keep-alive connection. A body over 16 MB is refused (413) without being read whole. A
client that disconnects before its answer cancels the query, which frees its concurrency slot.
"""
from __future__ import annotations

import asyncio
import json
import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from jupyter_serving.core.rules import RuleViolation
from jupyter_serving.local.engine import Engine
from jupyter_serving.local.gateway import MAX_PAYLOAD_BYTES, TOO_LARGE, Gateway, GatewayError
from jupyter_serving.local.http.deps import authenticate, endpoint_named
from jupyter_serving.local.http.errors import HANDLED, STATUS, ApiError

INVOKE_PATH = re.compile(r"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations/?$")
NO_SUCH_ENDPOINT = "RESOURCE_DOES_NOT_EXIST"
WATCH_AFTER_S = 0.05  # how long a query runs before its client is watched for a disconnect


class _Disconnected(Exception):
    """The client went away while its request body was being read."""


async def _send(send: Send, status: int, body: bytes, content_type: bytes, entity: str | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if entity is not None:
        headers.append((b"served-model-name", entity.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(exc: Exception) -> tuple[int, bytes]:
    status = STATUS.get(exc.error_code, 400) if isinstance(exc, RuleViolation) else exc.status
    body = {"error_code": exc.error_code, "message": exc.message, "details": []}
    return status, json.dumps(body).encode()


async def _read_body(scope: Scope, receive: Receive, declared: int | None) -> bytes:
    """The request body; GatewayError 413 as soon as it is known to exceed the limit."""
    if declared is not None and declared > MAX_PAYLOAD_BYTES:
        raise GatewayError(413, "BAD_REQUEST", TOO_LARGE)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise GatewayError(413, "BAD_REQUEST", TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _endpoint(engine: Engine, name: str, caller) -> dict:
    try:
        return endpoint_named(engine, name, caller, "CAN_QUERY")
    except (ApiError, RuleViolation) as exc:  # the data plane's own wording for a missing endpoint
        if exc.error_code == NO_SUCH_ENDPOINT:
            raise ApiError(NO_SUCH_ENDPOINT, f"Endpoint with name '{name}' does not exist.") from None
        raise


async def _until_answered(receive: Receive, gateway_call) -> tuple | None:
    """Await `gateway_call`, or cancel it when the client disconnects first (then return None).

    Watching for the disconnect takes a task, so it starts only once the query has run for
    WATCH_AFTER_S: most queries are answered sooner and cost a timer instead. A client that left
    meanwhile is seen at once then (uvicorn remembers the disconnect), so its slot is freed at most
    WATCH_AFTER_S late."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    done = gone = False
    watcher = None

    async def watch() -> None:
        nonlocal gone
        while not done:
            message = await receive()
            if message["type"] == "http.disconnect" and not done:
                gone = True
                task.cancel()
                return

    def start_watching() -> None:
        nonlocal watcher
        if not done:
            watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER_S, start_watching)
    try:
        return await gateway_call
    except asyncio.CancelledError:
        if gone:
            task.uncancel()
            return None
        raise
    finally:
        done = True
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


def with_invocations(app: FastAPI, engine: Engine, gateway: Gateway) -> ASGIApp:
    """`app` behind the invocations fast path."""

    async def invoke(scope: Scope, receive: Receive, send: Send, name: str, entity: str | None) -> None:
        authorization, content_type, declared = "", None, None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
        try:
            body = await _read_body(scope, receive, declared)
            caller = authenticate(engine, authorization)
            doc = _endpoint(engine, name, caller)
            answer = await _until_answered(receive, gateway.invoke(doc, body, content_type, caller.user, entity))
        except _Disconnected:
            return
        except HANDLED as exc:
            status, payload = _error(exc)
            await _send(send, status, payload, b"application/json")
            return
        if answer is not None:
            status, payload, media_type, served = answer
            await _send(send, status, payload, media_type.encode("latin-1"), served)

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INVOKE_PATH.match(scope["path"])
            if match:
                await invoke(scope, receive, send, match.group(1), match.group(2))
                return
        await app(scope, receive, send)

    return front
