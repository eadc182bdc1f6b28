"""What every part of `ServingClient` shares: the SDK client, the backend's facts, and the
low-level request helpers (SDK calls with error mapping, `api_client.do` with JSON headers)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_serving.client.errors import from_sdk_error
from jupyter_serving.core.errors import Hint, NotFoundError, ServingError
from jupyter_serving.core.status import EndpointStatus

ProgressCallback = Callable[[EndpointStatus, float], None]

DEFAULT_WAIT_TIMEOUT = 1200.0  # the SDK waiter's 20 minutes
DEFAULT_QUERY_TIMEOUT = 60.0

WAIT_HINT = Hint(python="`client.wait('{name}')`", magic="`%serve status {name} --watch`")


def wait_hint(template: str, name: str) -> Hint:
    """`template` with {how} replaced by the way to follow endpoint `name` in each front-end."""
    return Hint(python=template.format(how=WAIT_HINT.python.format(name=name)),
                magic=template.format(how=WAIT_HINT.magic.format(name=name)))


def endpoint_not_found(name: str) -> NotFoundError:
    err = NotFoundError(f"No serving endpoint named '{name}'", Hint(
        python="List the endpoints with `client.names()` (names are case-sensitive).",
        magic="List the endpoints with `%serve list` (names are case-sensitive)."),
        error_code="RESOURCE_DOES_NOT_EXIST")
    err.endpoint = name  # type: ignore[attr-defined]  # the missing endpoint, for "did you mean"
    return err


class ClientBase:
    """The state the mixins of `ServingClient` read; set by `ServingClient.__init__`."""

    workspace: Any  # databricks.sdk.WorkspaceClient
    host: str
    cloud: str
    is_local: bool
    query_timeout: float
    poll_max_interval: float

    @property
    def _api(self):
        return self.workspace.api_client

    def _headers(self, content: bool = False) -> dict:
        headers = {"Accept": "application/json"}
        if content:
            headers["Content-Type"] = "application/json"
        wsid = getattr(self.workspace.config, "workspace_id", None)
        if wsid:
            headers["X-Databricks-Workspace-Id"] = str(wsid)
        return headers

    def _call(self, fn: Callable[[], Any], *, what: str, not_found_hint: str | Hint = "",
              conflict_hint: str | Hint = "", hint: str | Hint = "") -> Any:
        """`fn()`, with any SDK or transport failure mapped onto a ServingError."""
        try:
            return fn()
        except ServingError:
            raise
        except Exception as err:  # noqa: BLE001 - mapped or re-raised by from_sdk_error
            raise from_sdk_error(err, what=what, host=self.host, not_found_hint=not_found_hint,
                                 conflict_hint=conflict_hint, hint=hint) from None

    def _do(self, method: str, path: str, *, what: str, body: dict | None = None, **hints: Any) -> Any:
        """A raw REST call (`api_client.do`) for what the typed SDK cannot send."""
        headers = self._headers(content=body is not None)
        return self._call(lambda: self._api.do(method, path, body=body, headers=headers), what=what, **hints)

    def _endpoint_call(self, name: str, fn: Callable[[], Any], *, what: str) -> Any:
        """`fn()` on endpoint `name`: a missing endpoint is `endpoint_not_found(name)`."""
        try:
            return fn()
        except Exception as err:  # noqa: BLE001
            mapped = from_sdk_error(err, what=what, host=self.host)
            if isinstance(mapped, NotFoundError):
                raise endpoint_not_found(name) from None
            raise mapped from None
