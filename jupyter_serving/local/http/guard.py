"""ASGI guards around the REST app: bounded request bodies and contained bugs.

`bounded_bodies` refuses a control-plane body over `MAX_BODY_BYTES` (413, from `Content-Length` before
reading, or while reading one without it: nothing larger is buffered) and a JSON document nested
deeper than `MAX_JSON_DEPTH` (400, found by a linear scan before any parser recurses), then replays
the body to the app. `contain_errors` keeps a bug from closing the connection: the app's handler has
already answered a Databricks 500, so the exception it re-raises is logged and dropped here.
"""
from __future__ import annotations

import logging
import re

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jupyter_serving.local.http.errors import error_body

log = logging.getLogger("jupyter_serving.local")

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `raw` nests arrays and objects deeper than `limit`. Linear per level: the
    strings are dropped, then the innermost bracket pairs are peeled `limit` times. Unbalanced text is
    left to the parser (it is malformed, and no deeper than what was peeled)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    for _ in range(limit):
        peeled = _INNERMOST.sub(b"", brackets)
        if peeled == brackets:
            return False
        brackets = peeled
    return bool(brackets) and _INNERMOST.search(brackets) is not None


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


def too_large() -> JSONResponse:
    return _refusal(413, "BAD_REQUEST", f"The request body is larger than {MAX_BODY_BYTES} bytes, the limit "
                                        "of the control plane's requests.")


async def read_bounded(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The body (None once it exceeds the limit; the rest is left unread) and any non-body message."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None, []
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), []


def bounded_bodies(app: ASGIApp) -> ASGIApp:
    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            await _refusal(400, "MALFORMED_REQUEST", "Content-Length is not a number.")(scope, receive, send)
            return
        if declared is not None and declared > MAX_BODY_BYTES:
            await too_large()(scope, receive, send)
            return
        body, pending = await read_bounded(receive)
        if body is None:
            await too_large()(scope, receive, send)
            return
        if json_depth_exceeds(body):
            await _refusal(400, "MALFORMED_REQUEST", f"The request body nests JSON deeper than {MAX_JSON_DEPTH} "
                                                     "levels.")(scope, receive, send)
            return
        replayed = [{"type": "http.request", "body": body, "more_body": False}, *pending]

        async def replay() -> Message:
            return replayed.pop(0) if replayed else await receive()

        await app(scope, replay, send)

    return guard


def contain_errors(app: ASGIApp) -> ASGIApp:
    async def contained(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracking_send)
        except Exception:  # the app's handler answered (and logged) it; without an answer, answer here
            if scope["type"] != "http":
                raise
            if started:
                return
            log.exception("Unhandled error in %s %s", scope.get("method"), scope.get("path"))
            await _refusal(500, "INTERNAL_ERROR", "Internal error; see the backend log.")(scope, receive, send)

    return contained
