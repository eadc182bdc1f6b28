"""Databricks-shaped error answers: `{"error_code", "message"}` with the status each code carries."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from jupyter_serving.core.rules import RuleViolation
from jupyter_serving.local.gateway import GatewayError

STATUS = {
    "INVALID_PARAMETER_VALUE": 400, "INVALID_STATE": 400, "BAD_REQUEST": 400, "MALFORMED_REQUEST": 400,
    "RESOURCE_DOES_NOT_EXIST": 404, "RESOURCE_ALREADY_EXISTS": 409, "RESOURCE_CONFLICT": 409,
    "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "REQUEST_LIMIT_EXCEEDED": 429,
}


class ApiError(Exception):
    """An error of the HTTP layer itself (credentials, request body); its status follows its code."""

    def __init__(self, error_code: str, message: str):
        super().__init__(message)
        self.error_code, self.message = error_code, message
        self.status = STATUS.get(error_code, 400)


HANDLED = (ApiError, RuleViolation, GatewayError)


def error_response(exc: ApiError | RuleViolation | GatewayError) -> JSONResponse:
    status = STATUS.get(exc.error_code, 400) if isinstance(exc, RuleViolation) else exc.status
    return JSONResponse({"error_code": exc.error_code, "message": exc.message}, status_code=status)


async def _handle(_request, exc: Exception) -> JSONResponse:
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    for kind in HANDLED:
        app.add_exception_handler(kind, _handle)
