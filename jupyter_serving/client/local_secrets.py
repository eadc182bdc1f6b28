"""The running local backend's secret store, through its Secrets API and databricks-sdk's
`WorkspaceClient.secrets` (what `jupyter-serving local secrets ...` uses).

Values only ever go in: nothing here reads one back, and no error message carries one.
"""
from __future__ import annotations

from typing import Any

from jupyter_serving.client.localctl import BackendInfo
from jupyter_serving.core.errors import one_line


class SecretsError(RuntimeError):
    """The backend refused or could not be reached; the message is the backend's, on one line."""


def _secrets(info: BackendInfo) -> Any:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    # On loopback a refused connection means the backend is gone: retry only briefly.
    config = Config(host=info.url, token=info.token, auth_type="pat", retry_timeout_seconds=10)
    return WorkspaceClient(config=config).secrets


def _call(fn, *args, **kwargs) -> Any:
    from databricks.sdk.errors import DatabricksError

    try:
        return fn(*args, **kwargs)
    except DatabricksError as err:
        raise SecretsError(one_line(err)) from None
    except (OSError, ValueError) as err:  # connection refused or reset: the backend went away
        raise SecretsError(f"The local backend could not be reached ({type(err).__name__}); is it running? "
                           "Check with: jupyter-serving local status") from None


def _create_scope(secrets: Any, scope: str) -> bool:
    from databricks.sdk.errors import ResourceAlreadyExists

    try:
        secrets.create_scope(scope)
    except ResourceAlreadyExists:
        return False
    return True


def put(info: BackendInfo, scope: str, key: str, value: str) -> bool:
    """Store `value` as secret `key` of `scope`, creating the scope first; returns whether it was created."""
    secrets = _secrets(info)
    created = _call(_create_scope, secrets, scope)
    _call(secrets.put_secret, scope, key, string_value=value)
    return created


def keys(info: BackendInfo, scope: str | None = None) -> list[tuple[str, str | None, int | None]]:
    """(scope, key, last updated in ms) of every secret of `scope` (of every scope when None); a scope
    without secrets is listed as (scope, None, None)."""
    secrets = _secrets(info)
    scopes = [scope] if scope else [s.name for s in _call(lambda: list(secrets.list_scopes()))]
    out: list[tuple[str, str | None, int | None]] = []
    for name in scopes:
        listed = _call(lambda n=name: list(secrets.list_secrets(n)))
        out += [(name, s.key, s.last_updated_timestamp) for s in listed] or [(name, None, None)]
    return out


def delete(info: BackendInfo, scope: str, key: str) -> None:
    _call(_secrets(info).delete_secret, scope, key)
