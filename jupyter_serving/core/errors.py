"""One exception hierarchy for every expected failure of the Python API and the magics.

An expected failure (bad input, unknown endpoint, throttling, missing credentials, ...) is a
`ServingError` whose message is one line: what is wrong, then how to fix it. Anything else is a bug
and keeps its traceback.

Pure: `jupyter_serving.client.errors` maps databricks-sdk and transport exceptions onto it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Hint",
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
    "StreamNotSupportedError",
    "BackendError",
    "one_line",
]


def one_line(text: Any, limit: int = 600) -> str:
    """Collapse whitespace (newlines included) so that a message fits on one line."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


@dataclass(frozen=True)
class Hint:
    """How to fix an error, said once per front-end.

    `python` is what a user of the plain Python API reads (`str(err)`); `magic` is what the
    `%serve` magics (and the lab panel) show instead. Where `magic` is empty both read `python`.
    """

    python: str
    magic: str = ""

    def text(self, frontend: str = "python") -> str:
        return self.magic if frontend == "magic" and self.magic else self.python


FRONTENDS = ("python", "magic")


class ServingError(Exception):
    """An expected failure. `str(err)` is one line: what is wrong, then how to fix it (in Python).

    Attributes: `message` (what is wrong), `hint` (how to fix it, may be empty; a `Hint` gives the
    fix per front-end), `error_code` (the Databricks error code when the server answered with one).
    `one_line("magic")` is the line the magics show.
    """

    def __init__(self, message: str, hint: str | Hint = "", *, error_code: str | None = None):
        self.message = one_line(message)
        if not isinstance(hint, Hint):
            hint = Hint(hint)
        self.fix = Hint(one_line(hint.python) if hint.python else "",
                        one_line(hint.magic) if hint.magic else "")
        self.error_code = error_code
        super().__init__(self.one_line())

    @property
    def hint(self) -> str:
        return self.fix.python

    def one_line(self, frontend: str = "python") -> str:
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, not {frontend!r}")
        hint = self.fix.text(frontend)
        if not hint:
            return self.message
        sep = " " if self.message.endswith((".", "!", "?", ":", ";")) else ". "
        return f"{self.message}{sep}{hint}"


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


class StreamNotSupportedError(QueryError):
    """A streamed query to a model that does not stream (refused before any chunk: nothing was answered)."""


class BackendError(ServingError):
    """The server failed (HTTP 5xx) or answered something unexpected."""
