"""Databricks-shaped error answers: `{"error_code", "message", "details"}` with the status each code carries.

Every error the REST app answers has this shape: the backend's own errors, request validation (400
`INVALID_PARAMETER_VALUE` naming the field, with a `google.rpc.BadRequest` detail listing each
violation), unparseable JSON (400 `MALFORMED_REQUEST`), unknown routes (404 `ENDPOINT_NOT_FOUND`) and
methods (405), and bugs (500 `INTERNAL_ERROR`). All of them are answered, so the keep-alive connection
stays open.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jupyter_serving.core.rules import RuleViolation
from jupyter_serving.local.gateway import GatewayError

log = logging.getLogger("jupyter_serving.local")

STATUS = {
    "INVALID_PARAMETER_VALUE": 400, "INVALID_STATE": 400, "BAD_REQUEST": 400, "MALFORMED_REQUEST": 400,
    "RESOURCE_DOES_NOT_EXIST": 404, "ENDPOINT_NOT_FOUND": 404, "RESOURCE_ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "REQUEST_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500, "TEMPORARILY_UNAVAILABLE": 503,
}
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
MAX_VIOLATIONS = 20  # listed in `details`; the message names the first
OBJECT_TYPES = {"model_type", "model_attributes_type", "dict_type"}


class ApiError(Exception):
    """An error of the HTTP layer itself (credentials, request body); its status follows its code."""

    def __init__(self, error_code: str, message: str, status: int | None = None, details: list | None = None):
        super().__init__(message)
        self.error_code, self.message = error_code, message
        self.status = status or STATUS.get(error_code, 400)
        self.details = details or []
        self.headers: dict | None = None


HANDLED = (ApiError, RuleViolation, GatewayError)


def error_body(error_code: str, message: str, details: list | None = None) -> dict:
    return {"error_code": error_code, "message": message, "details": details or []}


def error_response(exc: ApiError | RuleViolation | GatewayError) -> JSONResponse:
    status = STATUS.get(exc.error_code, 400) if isinstance(exc, RuleViolation) else exc.status
    return JSONResponse(error_body(exc.error_code, exc.message, getattr(exc, "details", None)), status_code=status,
                        headers=getattr(exc, "headers", None))


def field_path(loc: tuple) -> str:
    """`("body", "config", "served_entities", 0, "name")` as `config.served_entities[0].name`."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part[:40]!r}]"
    return out


def _description(error: dict) -> str:
    if error["type"] in OBJECT_TYPES:
        return "Input should be a JSON object"
    return error["msg"]


def validation_error(errors: list[dict]) -> ApiError:
    """The 400 a failed request validation answers: one readable line, every violation in `details`."""
    first = errors[0]
    if first["type"] == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return ApiError("MALFORMED_REQUEST", f"The request body is not valid JSON: {reason}.")
    if first["loc"] == ("body",):
        if first["type"] == "missing":
            return ApiError("MALFORMED_REQUEST", "The request needs a JSON object body.")
        return ApiError("MALFORMED_REQUEST", "The request body must be a JSON object.")
    violations = [{"field": field_path(e["loc"]) or "body", "description": _description(e)}
                  for e in errors[:MAX_VIOLATIONS]]
    message = f"{violations[0]['field']}: {violations[0]['description']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more: see details)"
    return ApiError("INVALID_PARAMETER_VALUE", message,
                    details=[{"@type": BAD_REQUEST_TYPE, "field_violations": violations}])


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


async def _handle_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(validation_error(list(exc.errors())))


async def _handle_http(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own errors (no route, wrong method, an unparseable body) in the Databricks shape."""
    where = f"'{request.method} {request.url.path}'"
    if exc.status_code == 404:
        error = ApiError("ENDPOINT_NOT_FOUND", f"No API found for {where}.")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = ApiError("ENDPOINT_NOT_FOUND", f"No API found for {where}; this path accepts {allowed}.", 405)
        error.headers = exc.headers
    elif exc.status_code == 400:
        error = ApiError("MALFORMED_REQUEST", f"The request body could not be parsed: {exc.detail}.")
    else:
        code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 413: "BAD_REQUEST", 429: "REQUEST_LIMIT_EXCEEDED"}
        error = ApiError(code.get(exc.status_code, "BAD_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR"),
                         str(exc.detail), exc.status_code)
    return error_response(error)


async def _handle_bug(request: Request, exc: Exception) -> JSONResponse:
    """A bug, not bad input: logged with its traceback, answered 500 (see `guard.contain_errors`)."""
    log.error("Unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError("INTERNAL_ERROR", f"Internal error ({type(exc).__name__}); see the backend log.",
                                   500))


def install_error_handlers(app: FastAPI) -> None:
    for kind in HANDLED:
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(HTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_bug)
