"""One exception hierarchy for every expected failure of the Python API and the magics.

An expected failure (bad input, unknown endpoint, throttling, missing credentials, ...) is a
`ServingError` whose message is one line: what is wrong, then how to fix it. Anything else is a bug
and keeps its traceback.

`from_sdk_error` maps databricks-sdk and transport exceptions to this hierarchy. It imports nothing
heavy at module level, so the magics can import this module while loading.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ServingError",
    "InvalidInputError",
    "NotFoundError",
    "ConflictError",
    "ThrottledError",
    "AccessDeniedError",
    "AuthenticationError",
    "ConnectionFailedError",
    "ServingTimeoutError",
    "DeploymentFailedError",
    "QueryError",
    "BackendError",
    "one_line",
    "from_sdk_error",
]


def one_line(text: Any, limit: int = 600) -> str:
    """Collapse whitespace (newlines included) so that a message fits on one line."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


class ServingError(Exception):
    """An expected failure. `str(err)` is one line: what is wrong, then how to fix it.

    Attributes: `message` (what is wrong), `hint` (how to fix it, may be empty), `error_code`
    (the Databricks error code when the server answered with one).
    """

    def __init__(self, message: str, hint: str = "", *, error_code: str | None = None):
        self.message = one_line(message)
        self.hint = one_line(hint) if hint else ""
        self.error_code = error_code
        super().__init__(self.one_line())

    def one_line(self) -> str:
        if not self.hint:
            return self.message
        sep = " " if self.message.endswith((".", "!", "?", ":", ";")) else ". "
        return f"{self.message}{sep}{self.hint}"


class InvalidInputError(ServingError):
    """The request is invalid (checked client-side by `rules`, or refused by the server with 400)."""


class NotFoundError(ServingError):
    """An endpoint, served entity, model or model version does not exist."""


class ConflictError(ServingError):
    """The request conflicts with the endpoint's state: it exists already, or an update is running."""


class ThrottledError(ServingError):
    """HTTP 429: too many concurrent requests for the served entity, or a rate limit."""


class AccessDeniedError(ServingError):
    """HTTP 403: the identity may not do this."""


class AuthenticationError(ServingError):
    """No credentials, or the credentials were refused (HTTP 401)."""


class ConnectionFailedError(ServingError):
    """The workspace or the local backend cannot be reached."""


class ServingTimeoutError(ServingError):
    """A wait or a query took longer than allowed."""


class DeploymentFailedError(ServingError):
    """A config update (create, update, start) ended in UPDATE_FAILED or UPDATE_CANCELED."""


class QueryError(ServingError):
    """The endpoint refused or failed a query (bad input, stopped endpoint, model error)."""


class BackendError(ServingError):
    """The server failed (HTTP 5xx) or answered something unexpected."""


# --------------------------------------------------------------------------------------------------
# Mapping databricks-sdk / transport exceptions


def _server_message(err: BaseException) -> str:
    message = one_line(str(err) or getattr(err, "message", None) or type(err).__name__)
    # databricks-sdk appends its config and environment to 401/403 messages: keep the server's words.
    message = re.split(r"\.? Config: ", message)[0]
    return message.rstrip(".")


def _connection_cause(err: BaseException) -> BaseException | None:
    """The requests-level connection error behind `err` (the SDK wraps retried ones in TimeoutError)."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests ships with databricks-sdk
        return None
    seen = 0
    cur: BaseException | None = err
    while cur is not None and seen < 6:
        if isinstance(cur, (requests.ConnectionError, requests.Timeout)):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _describe_connection_error(err: BaseException) -> str:
    text = str(err)
    for pattern, label in (
        (r"Connection refused", "connection refused"),
        (r"Name or service not known|nodename nor servname|getaddrinfo failed|Failed to resolve",
         "host name not found"),
        (r"timed out|Timeout", "timed out"),
        (r"SSLError|CERTIFICATE_VERIFY_FAILED|certificate", "TLS/certificate error"),
    ):
        if re.search(pattern, text, re.I):
            return label
    return type(err).__name__


def from_sdk_error(
    err: BaseException,
    *,
    what: str = "",
    hint: str = "",
    host: str | None = None,
    not_found_hint: str = "",
    conflict_hint: str = "",
) -> ServingError:
    """Translate an exception raised by databricks-sdk (or requests under it) into a ServingError.

    `what` names the operation for the message ("Creating endpoint 'x'"); the hints override the
    default fix for that class of error.
    """
    if isinstance(err, ServingError):
        return err
    prefix = f"{what}: " if what else ""
    where = f" at {host}" if host else ""

    conn = _connection_cause(err)
    if conn is not None:
        import requests

        if isinstance(conn, requests.Timeout) and not isinstance(conn, requests.ConnectTimeout):
            return ServingTimeoutError(
                f"{prefix}the server{where} did not answer in time",
                hint or "Try again; if it persists, check the workspace's health or raise the timeout.",
            )
        return ConnectionFailedError(
            f"{prefix}cannot reach the server{where} ({_describe_connection_error(conn)})",
            hint or "Check the host URL and your network/VPN, or run `%serve connect local` "
            "to use the local backend.",
        )

    try:
        from databricks.sdk import errors as sdk_errors
    except ImportError:  # pragma: no cover
        sdk_errors = None

    if sdk_errors is not None and isinstance(err, sdk_errors.DatabricksError):
        code = getattr(err, "error_code", None)
        msg = f"{prefix}{_server_message(err)}"
        if isinstance(err, sdk_errors.TooManyRequests):
            return ThrottledError(
                msg,
                hint or "The endpoint is at capacity: retry later, or raise the served entity's "
                "concurrency (`%serve update NAME --entity E --workload-size Medium`).",
                error_code=code,
            )
        if isinstance(err, sdk_errors.NotFound):
            return NotFoundError(msg, not_found_hint or hint or "Check the name with `%serve list`.",
                                 error_code=code)
        if isinstance(err, sdk_errors.ResourceConflict):
            return ConflictError(msg, conflict_hint or hint or "Check the endpoint's state with "
                                 "`%serve status NAME` and try again.", error_code=code)
        if isinstance(err, sdk_errors.Unauthenticated):
            return AuthenticationError(
                f"{prefix}the server{where} refused the credentials ({_server_message(err)})",
                "Check DATABRICKS_TOKEN or your ~/.databrickscfg profile "
                "(`databricks auth login`), then `%serve connect` again.",
                error_code=code,
            )
        if isinstance(err, sdk_errors.PermissionDenied):
            return AccessDeniedError(
                msg, hint or "Ask an endpoint manager for the permission (CAN_MANAGE to change it, "
                "CAN_QUERY to query it).", error_code=code)
        if isinstance(err, sdk_errors.BadRequest):
            return InvalidInputError(msg, hint or "Fix the request and try again.", error_code=code)
        if isinstance(err, sdk_errors.DeadlineExceeded):
            return ServingTimeoutError(msg, hint or "The model took too long; try a smaller request.",
                                       error_code=code)
        return BackendError(
            msg, hint or "The server failed; try again, and check `%serve status NAME` and "
            "`%serve logs NAME`.", error_code=code)

    if isinstance(err, TimeoutError):
        return ServingTimeoutError(f"{prefix}{one_line(err) or 'timed out'}",
                                   hint or "Try again later.")
    # Anything else is not expected: let the caller re-raise it with its traceback.
    raise err
