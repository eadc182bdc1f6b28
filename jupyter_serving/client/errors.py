"""Mapping databricks-sdk and transport exceptions onto the `core.errors` hierarchy.

`from_sdk_error` looks the SDK exception up in `SDK_ERRORS` (SDK class -> our class and default
fix, first match wins, subclasses first) and transport failures (no answer, a refused
connection) up in the connection rules. Imports nothing heavy at module level, so the magics can
import this module while loading.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from jupyter_serving.core.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackendError,
    ConflictError,
    ConnectionFailedError,
    Hint,
    InvalidInputError,
    NotFoundError,
    ServingError,
    ServingTimeoutError,
    ThrottledError,
    one_line,
)

__all__ = ["SDK_ERRORS", "SdkErrorRule", "describe_connection_error", "from_sdk_error", "server_message",
           "UNREACHABLE_HINT"]

UNREACHABLE_HINT = Hint(
    python="Check the host URL and your network/VPN, or use the local backend with `api.connect(local=True)`.",
    magic="Check the host URL and your network/VPN, or run `%serve connect local` to use the local backend.")


@dataclass(frozen=True)
class SdkErrorRule:
    """How one databricks-sdk exception class (by name, in `databricks.sdk.errors`) maps onto ours.

    `message` is formatted with prefix (the operation, "Creating endpoint 'x': "), where (" at HOST")
    and server (the server's words); `overrides` names the caller's hints that replace `hint`, in order.
    """

    sdk_class: str
    error: type[ServingError]
    hint: Hint
    overrides: tuple[str, ...] = ("hint",)
    message: str = "{prefix}{server}"


SDK_ERRORS: tuple[SdkErrorRule, ...] = (
    SdkErrorRule("TooManyRequests", ThrottledError, Hint(
        python="The endpoint is at capacity: retry later, or raise the served entity's concurrency "
               "(`client.update_config(NAME, entity=E, workload_size='Medium')`).",
        magic="The endpoint is at capacity: retry later, or raise the served entity's concurrency "
              "(`%serve update NAME --entity E --workload-size Medium`).")),
    SdkErrorRule("NotFound", NotFoundError, Hint(python="Check the name with `client.names()`.",
                                                 magic="Check the name with `%serve list`."),
                 overrides=("not_found_hint", "hint")),
    SdkErrorRule("ResourceConflict", ConflictError, Hint(
        python="Check the endpoint's state with `client.get(NAME)` and try again.",
        magic="Check the endpoint's state with `%serve status NAME` and try again."),
        overrides=("conflict_hint", "hint")),
    SdkErrorRule("Unauthenticated", AuthenticationError, Hint(
        python="Check DATABRICKS_TOKEN or your ~/.databrickscfg profile (`databricks auth login`), then "
               "`api.connect()` again.",
        magic="Check DATABRICKS_TOKEN or your ~/.databrickscfg profile (`databricks auth login`), then "
              "`%serve connect` again."),
        overrides=(), message="{prefix}the server{where} refused the credentials ({server})"),
    SdkErrorRule("PermissionDenied", AccessDeniedError, Hint(
        "Ask an endpoint manager for the permission (CAN_MANAGE to change it, CAN_QUERY to query it).")),
    SdkErrorRule("BadRequest", InvalidInputError, Hint("Fix the request and try again.")),
    SdkErrorRule("DeadlineExceeded", ServingTimeoutError, Hint("The model took too long; try a smaller request.")),
    SdkErrorRule("DatabricksError", BackendError, Hint(
        python="The server failed; try again, and check `client.get(NAME)` and `client.logs(NAME)`.",
        magic="The server failed; try again, and check `%serve status NAME` and `%serve logs NAME`.")),
)

_CONNECTION_LABELS = (
    (r"Connection refused", "connection refused"),
    (r"Name or service not known|nodename nor servname|getaddrinfo failed|Failed to resolve", "host name not found"),
    (r"timed out|Timeout", "timed out"),
    (r"SSLError|CERTIFICATE_VERIFY_FAILED|certificate", "TLS/certificate error"),
)


def server_message(err: BaseException) -> str:
    """The server's words, on one line, without the SDK's config dump."""
    message = one_line(str(err) or getattr(err, "message", None) or type(err).__name__)
    # databricks-sdk appends its config and environment to 401/403 messages: keep the server's words.
    message = re.split(r"\.? Config: ", message)[0]
    return message.rstrip(".")


def describe_connection_error(err: BaseException) -> str:
    """A few words for a transport failure: "connection refused", "host name not found", ..."""
    text = str(err)
    for pattern, label in _CONNECTION_LABELS:
        if re.search(pattern, text, re.I):
            return label
    return type(err).__name__


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


def _from_connection_error(conn: BaseException, prefix: str, where: str, hint: str | Hint) -> ServingError:
    import requests

    if isinstance(conn, requests.Timeout) and not isinstance(conn, requests.ConnectTimeout):
        return ServingTimeoutError(f"{prefix}the server{where} did not answer in time",
                                   hint or "Try again; if it persists, check the workspace's health or raise the "
                                   "timeout.")
    return ConnectionFailedError(f"{prefix}cannot reach the server{where} ({describe_connection_error(conn)})",
                                 hint or UNREACHABLE_HINT)


def _sdk_rule(err: BaseException) -> SdkErrorRule | None:
    try:
        from databricks.sdk import errors as sdk_errors
    except ImportError:  # pragma: no cover
        return None
    for rule in SDK_ERRORS:
        if isinstance(err, getattr(sdk_errors, rule.sdk_class)):
            return rule
    return None


def from_sdk_error(
    err: BaseException,
    *,
    what: str = "",
    hint: str | Hint = "",
    host: str | None = None,
    not_found_hint: str | Hint = "",
    conflict_hint: str | Hint = "",
) -> ServingError:
    """Translate an exception raised by databricks-sdk (or requests under it) into a ServingError.

    `what` names the operation for the message ("Creating endpoint 'x'"); the hints override the
    default fix for that class of error. Anything unexpected is re-raised as it is.
    """
    if isinstance(err, ServingError):
        return err
    prefix = f"{what}: " if what else ""
    where = f" at {host}" if host else ""
    conn = _connection_cause(err)
    if conn is not None:
        return _from_connection_error(conn, prefix, where, hint)
    rule = _sdk_rule(err)
    if rule is not None:
        given = {"hint": hint, "not_found_hint": not_found_hint, "conflict_hint": conflict_hint}
        fix = next((given[k] for k in rule.overrides if given[k]), rule.hint)
        message = rule.message.format(prefix=prefix, where=where, server=server_message(err))
        return rule.error(message, fix, error_code=getattr(err, "error_code", None))
    if isinstance(err, TimeoutError):
        return ServingTimeoutError(f"{prefix}{one_line(err) or 'timed out'}", hint or "Try again later.")
    raise err  # not expected: the caller re-raises it with its traceback
