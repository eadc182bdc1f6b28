"""The data plane: a bare ASGI front for `POST /serving-endpoints/{name}[/served-models/{entity}]/invocations`
and the OpenAI-compatible routes `POST /serving-endpoints/{chat/completions,completions,embeddings,responses}`
(the endpoint is the body's `model` field, as the openai client sends it).

Invocations are the hot path, so no web-framework routing, validation or dependency injection runs
per request: the front matches the path itself, authenticates, checks CAN_QUERY and hands the body
to the gateway. Everything else goes to the REST app.

Every answer is JSON, errors in Databricks' shape (`error_code`, `message`, `details`), and none
closes the keep-alive connection. A body over 16 MB is refused (413) without being read whole. A
client that disconnects before its answer cancels the query, which frees its concurrency slot.
On the OpenAI-compatible routes an error body also carries `error {message, type, code}`, which is
what the openai client reads its message from.

A streamed answer (`stream: true`) goes out as `text/event-stream`, each piece sent on as it comes
from the model; a client that disconnects mid-stream ends it (and frees its slot) at once.
"""
from __future__ import annotations

import asyncio
import json
import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from jupyter_serving.core.rules import RuleViolation
from jupyter_serving.local.answers import MAX_PAYLOAD_BYTES, TOO_LARGE, GatewayError
from jupyter_serving.local.engine import Engine
from jupyter_serving.local.gateway import Gateway, StreamAnswer
from jupyter_serving.local.http.deps import authenticate, endpoint_named
from jupyter_serving.local.http.errors import HANDLED, STATUS, ApiError

INVOKE_PATH = re.compile(r"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations/?$")
OPENAI_PATH = re.compile(r"^/serving-endpoints/(chat/completions|completions|embeddings|responses)/?$")
CHAT_TASKS = frozenset({"llm/v1/chat", "agent/v1/chat"})
OPENAI_TASKS = {"chat/completions": CHAT_TASKS, "completions": frozenset({"llm/v1/completions"}),
                "embeddings": frozenset({"llm/v1/embeddings"}), "responses": frozenset({"agent/v1/responses"})}
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}
NO_SUCH_ENDPOINT = "RESOURCE_DOES_NOT_EXIST"
WATCH_AFTER_S = 0.05  # how long a query runs before its client is watched for a disconnect


class _Disconnected(Exception):
    """The client went away while its request body was being read."""


async def _send(send: Send, status: int, body: bytes, content_type: bytes, entity: str | None = None,
                extra: list | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    if entity is not None:
        headers.append((b"served-model-name", entity.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(exc: Exception) -> tuple[int, bytes, list]:
    """(status, body, extra headers) of a refusal; the AI Gateway's carry their own body and headers."""
    status = STATUS.get(exc.error_code, 400) if isinstance(exc, RuleViolation) else exc.status
    if hasattr(exc, "payload"):
        headers = [(k.lower().encode(), str(v).encode()) for k, v in (exc.headers or {}).items()]
        return status, exc.payload(), headers
    body = {"error_code": exc.error_code, "message": exc.message, "details": []}
    return status, json.dumps(body).encode(), []


def _openai_error(status: int, payload: bytes) -> bytes:
    """A Databricks error body with OpenAI's `error` object beside it (the openai client reads that)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(body, dict) and "error" not in body:
        body["error"] = {"message": body.get("message", ""), "code": body.get("error_code"),
                         "type": _OPENAI_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")}
    return json.dumps(body).encode()


def _openai_target(body: bytes, route: str) -> tuple[str, bytes]:
    """The endpoint an OpenAI-style body names in `model`, and the body to forward (without `model`;
    `max_completion_tokens` is taken as `max_tokens`, which MLflow's chat models read; a Responses API
    `input` given as a string becomes the one user message ResponsesAgent takes)."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        raise GatewayError(400, "BAD_REQUEST", "The request body is not valid JSON.") from None
    if not isinstance(request, dict):
        raise GatewayError(400, "BAD_REQUEST", "The request body must be a JSON object.")
    name = request.pop("model", None)
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "BAD_REQUEST", "The request names no endpoint: set 'model' to the serving "
                                               "endpoint's name.")
    if route == "chat/completions" and "max_completion_tokens" in request and "max_tokens" not in request:
        request["max_tokens"] = request.pop("max_completion_tokens")  # OpenAI's newer name (langchain sends it)
    if route == "responses" and isinstance(request.get("input"), str):
        request["input"] = [{"role": "user", "content": request["input"]}]
    return name, json.dumps(request).encode()


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


async def _relay(send: Send, receive: Receive, answer: StreamAnswer) -> None:
    """Send a streamed answer on piece by piece; a client that disconnects ends the stream at once."""
    task = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    headers = [(b"content-type", answer.media_type.encode("latin-1")), (b"cache-control", b"no-cache"),
               (b"served-model-name", answer.served.encode())]
    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        async for piece in answer.pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
    finally:
        watcher.cancel()
        await answer.pieces.aclose()


def _headers(scope: Scope) -> tuple[str, str | None, int | None]:
    """(authorization, content type, declared content length) of a request."""
    authorization, content_type, declared = "", None, None
    for key, value in scope["headers"]:
        if key == b"authorization":
            authorization = value.decode("latin-1")
        elif key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == b"content-length" and value.isdigit():
            declared = int(value)
    return authorization, content_type, declared


async def _answer(send: Send, receive: Receive, answer, route: str | None) -> None:
    if type(answer) is StreamAnswer:
        await _relay(send, receive, answer)
    elif answer is not None:
        status, payload, media_type, served = answer
        if route is not None and status >= 400:
            payload = _openai_error(status, payload)
        await _send(send, status, payload, media_type.encode("latin-1"), served)


def with_invocations(app: FastAPI, engine: Engine, gateway: Gateway) -> ASGIApp:
    """`app` behind the invocations fast path."""

    async def invoke(scope: Scope, receive: Receive, send: Send, name: str | None, entity: str | None,
                     route: str | None = None) -> None:
        authorization, content_type, declared = _headers(scope)
        try:
            body = await _read_body(scope, receive, declared)
            caller = authenticate(engine, authorization)
            if route is not None:
                name, body = _openai_target(body, route)
            doc = _endpoint(engine, name, caller)
            tasks = OPENAI_TASKS[route] if route is not None else None
            answer = await _until_answered(receive, gateway.invoke(doc, body, content_type, caller, entity, tasks))
        except _Disconnected:
            return
        except HANDLED as exc:
            status, payload, headers = _error(exc)
            await _send(send, status, _openai_error(status, payload) if route else payload, b"application/json",
                        extra=headers)
            return
        await _answer(send, receive, answer, route)

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INVOKE_PATH.match(scope["path"])
            if match:
                await invoke(scope, receive, send, match.group(1), match.group(2))
                return
            match = OPENAI_PATH.match(scope["path"])
            if match:
                await invoke(scope, receive, send, None, None, match.group(1))
                return
        await app(scope, receive, send)

    return front
