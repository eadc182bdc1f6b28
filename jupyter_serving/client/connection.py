"""Which backend the API and the magics talk to, and how to open a `WorkspaceClient` for it.

Resolution order:
  1. an explicit choice: `connect(profile=...)`, `connect(host=...)` (token from DATABRICKS_TOKEN or
     a ~/.databrickscfg profile for that host) or `connect(local=True)`;
  2. otherwise a configured Databricks workspace (databricks-sdk unified auth): DATABRICKS_HOST,
     DATABRICKS_CONFIG_PROFILE, the DEFAULT profile of ~/.databrickscfg, or a Databricks runtime;
  3. otherwise the embedded local backend, started on demand.

`default_target()` and `Target.describe()` do no network I/O and import nothing heavy (they run
during `%load_ext`). databricks-sdk is imported only when a client is actually opened. mlflow is
never imported here.
"""
from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_serving._version import __version__
from jupyter_serving.core.errors import (
    AuthenticationError,
    ConnectionFailedError,
    Hint,
    InvalidInputError,
    ServingError,
    one_line,
)

USER_AGENT_PRODUCT = "jupyter-serving"

LOCAL = "local"
WORKSPACE = "workspace"


@dataclass(frozen=True)
class Target:
    """Where requests go. `kind` is "workspace" or "local"; `source` says why it was chosen."""

    kind: str
    source: str
    host: str | None = None
    profile: str | None = None
    data_dir: str | None = None
    token: str | None = field(default=None, repr=False)  # never printed

    def describe(self) -> str:
        """One line for humans, without the token and without starting anything."""
        if self.kind == LOCAL:
            running = _local_server_url(self.data_dir)
            if running:
                return f"the local backend at {running} ({self.source})"
            home = _local_home(self.data_dir)
            data = "" if _is_temp(home) else f", data in {_tilde(home)}"
            return f"the local backend (started on first use{data}; {self.source})"
        local_url = _local_server_url(self.data_dir)
        if self.host and local_url and _same_host(self.host, local_url):
            return f"the local backend at {self.host} ({self.source})"
        if self.host:
            return f"the Databricks workspace {self.host} ({self.source})"
        return f"a Databricks workspace ({self.source})"


def _tilde(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _is_temp(path: Path) -> bool:
    """Whether `path` lies in the system's temp dir (a throwaway data dir: not worth showing)."""
    import tempfile

    try:
        roots = {Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve()}
        return any(path.resolve().is_relative_to(root) for root in roots)
    except OSError:
        return False


def _same_host(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _local_home(data_dir: str | None) -> Path:
    from jupyter_serving.datadir import home_dir

    return home_dir(data_dir)


def _local_server_url(data_dir: str | None) -> str | None:
    """URL recorded by a local backend for this data dir (no network: a stale file is possible)."""
    try:
        from jupyter_serving.datadir import Paths

        info = json.loads(Paths(_local_home(data_dir)).server.read_text())
        return info.get("url")
    except (OSError, ValueError, AttributeError):
        return None


def _local_cloud(data_dir: str | None) -> str | None:
    try:
        from jupyter_serving.datadir import Paths

        return json.loads(Paths(_local_home(data_dir)).server.read_text()).get("cloud")
    except (OSError, ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------------
# ~/.databrickscfg without databricks-sdk (cheap enough for %load_ext)


def config_file_path() -> Path:
    return Path(os.environ.get("DATABRICKS_CONFIG_FILE") or "~/.databrickscfg").expanduser()


def read_profiles() -> dict[str, dict[str, str]]:
    """Profiles of the Databricks config file: {name: {key: value}} (DEFAULT included if set)."""
    path = config_file_path()
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error:
        return {}
    profiles = {name: dict(parser._sections[name]) for name in parser.sections()}
    if parser.defaults():
        profiles["DEFAULT"] = dict(parser.defaults())
    return profiles


def profile_for_host(host: str) -> str | None:
    for name, values in read_profiles().items():
        if values.get("host") and _same_host(_normalize_host(values["host"]), _normalize_host(host)):
            return name
    return None


def _normalize_host(host: str) -> str:
    host = host.strip()
    if "://" not in host:
        host = "https://" + host
    return host.rstrip("/")


# --------------------------------------------------------------------------------------------------
# Resolution


def default_target(data_dir: str | None = None) -> Target:
    """The target used when nobody chose one explicitly. No network, nothing started."""
    env = os.environ
    if env.get("DATABRICKS_HOST"):
        return Target(WORKSPACE, "from DATABRICKS_HOST", host=_normalize_host(env["DATABRICKS_HOST"]),
                      data_dir=data_dir)
    if env.get("DATABRICKS_CONFIG_PROFILE"):
        name = env["DATABRICKS_CONFIG_PROFILE"]
        host = read_profiles().get(name, {}).get("host")
        return Target(WORKSPACE, f"profile {name} from DATABRICKS_CONFIG_PROFILE",
                      host=_normalize_host(host) if host else None, profile=name, data_dir=data_dir)
    default = read_profiles().get("DEFAULT", {})
    if default.get("host"):
        return Target(WORKSPACE, f"DEFAULT profile of {_tilde(config_file_path())}",
                      host=_normalize_host(default["host"]), profile="DEFAULT", data_dir=data_dir)
    if env.get("DATABRICKS_RUNTIME_VERSION"):
        return Target(WORKSPACE, "Databricks runtime", data_dir=data_dir)
    return Target(LOCAL, "no Databricks workspace configured", data_dir=data_dir)


def resolve_target(
    *,
    profile: str | None = None,
    host: str | None = None,
    local: bool = False,
    data_dir: str | None = None,
    token: str | None = None,
) -> Target:
    """The target for an explicit choice, or `default_target()` when nothing is chosen."""
    chosen = [x for x in (profile, host, local) if x]
    if len(chosen) > 1:
        raise InvalidInputError("Choose one of a profile, a host or the local backend", Hint(
            python="e.g. `api.connect(profile='NAME')`, `api.connect(host='URL')` or `api.connect(local=True)`.",
            magic="e.g. `%serve connect --profile NAME`, `%serve connect --host URL` or `%serve connect local`."))
    if local:
        return Target(LOCAL, "chosen with connect local", data_dir=data_dir)
    if profile:
        profiles = read_profiles()
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise AuthenticationError(
                f"No profile '{profile}' in {_tilde(config_file_path())} (profiles: {known})",
                "Create it with `databricks auth login --profile NAME` or pick an existing one.")
        phost = profiles[profile].get("host")
        return Target(WORKSPACE, f"profile {profile}", host=_normalize_host(phost) if phost else None,
                      profile=profile, data_dir=data_dir)
    if host:
        if not host.strip() or any(c.isspace() for c in host.strip()):
            raise InvalidInputError(f"Invalid host '{host}'", "Use the workspace URL, e.g. "
                                    "https://my-workspace.cloud.databricks.com.")
        norm = _normalize_host(host)
        if token:
            return Target(WORKSPACE, "chosen with connect --host", host=norm, token=token, data_dir=data_dir)
        if os.environ.get("DATABRICKS_TOKEN"):
            return Target(WORKSPACE, "chosen with connect --host, token from DATABRICKS_TOKEN", host=norm,
                          data_dir=data_dir)
        prof = profile_for_host(norm)
        if prof:
            return Target(WORKSPACE, f"chosen with connect --host, credentials of profile {prof}", host=norm,
                          profile=prof, data_dir=data_dir)
        return Target(WORKSPACE, "chosen with connect --host", host=norm, data_dir=data_dir)
    return default_target(data_dir)


# --------------------------------------------------------------------------------------------------
# Opening a client


@dataclass
class Opened:
    """What `open_client` returns: the SDK client, the target and facts the API needs."""

    workspace: Any  # databricks.sdk.WorkspaceClient
    target: Target
    host: str
    cloud: str
    is_local: bool

    def describe(self) -> str:
        if self.is_local:
            return f"the local backend at {self.host}"
        return f"the Databricks workspace {self.host}"


def set_user_agent() -> None:
    from databricks.sdk import useragent

    try:
        useragent.with_product(USER_AGENT_PRODUCT, __version__)
    except ValueError:  # pragma: no cover - an unusual version string
        pass


def _probe(host: str, timeout: float = 5.0) -> None:
    """Fail fast (no retries) when the host cannot be reached at all. Any HTTP answer counts."""
    import requests

    try:
        requests.get(host.rstrip("/") + "/.well-known/databricks-config", timeout=timeout,
                     allow_redirects=False)
    except requests.RequestException as err:
        from jupyter_serving.client.errors import UNREACHABLE_HINT, describe_connection_error

        raise ConnectionFailedError(
            f"Cannot reach the Databricks workspace at {host} ({describe_connection_error(err)})",
            UNREACHABLE_HINT) from None


def cloud_of(cfg: Any) -> str:
    """The workspace's cloud ("aws", "azure", "gcp") as its SDK config tells it."""
    try:
        if cfg.is_azure:
            return "azure"
        if cfg.is_gcp:
            return "gcp"
    except Exception:  # noqa: BLE001 - best effort
        pass
    return "aws"


_NO_CREDENTIALS_HINT = Hint(
    python="Set DATABRICKS_TOKEN, or log in with `databricks auth login --host URL` and "
           "`api.connect(profile='NAME')`; or `api.connect(local=True)` for the local backend.",
    magic="Set DATABRICKS_TOKEN, or log in with `databricks auth login --host URL` and "
          "`%serve connect --profile NAME`; or `%serve connect local` for the local backend.")
_NO_HOST_HINT = Hint(python="Set DATABRICKS_HOST or use `api.connect(host='URL')`.",
                     magic="Set DATABRICKS_HOST or use `%serve connect --host URL`.")


def _open_local(target: Target, retry_timeout_seconds: int, http_timeout_seconds: float) -> Opened:
    """Start the local backend if needed and open a client for it."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    from jupyter_serving.client import localctl

    try:
        info = localctl.ensure_running(target.data_dir)
    except localctl.LocalBackendError as err:
        raise ConnectionFailedError(f"The local backend could not start: {err}",
                                    "Fix the cause shown in the log and try again.") from None
    except (OSError, KeyError, ValueError) as err:
        raise ConnectionFailedError(f"The local backend could not start ({one_line(err)})",
                                    "Check `python -m jupyter_serving.local --help`.") from None
    # Point MLflow (in this process) at the backend's registry, unless the user chose one, so
    # that `mlflow.register_model` puts models where `create` looks for them.
    for var, value in info.env().items():
        if var.startswith("MLFLOW_"):
            os.environ.setdefault(var, value)
    # On loopback a refused connection means the backend is gone: do not retry for a minute.
    cfg = Config(host=info.url, token=info.token, auth_type="pat",
                 retry_timeout_seconds=min(retry_timeout_seconds, 10), http_timeout_seconds=http_timeout_seconds)
    return Opened(WorkspaceClient(config=cfg), target, info.url, info.cloud or "aws", True)


def _workspace_config(target: Target, retry_timeout_seconds: int, http_timeout_seconds: float) -> Any:
    """The SDK `Config` for a workspace target (probing the host first when one is named)."""
    from databricks.sdk.core import Config

    kwargs: dict[str, Any] = {"retry_timeout_seconds": retry_timeout_seconds,
                              "http_timeout_seconds": http_timeout_seconds}
    if target.profile:
        kwargs["profile"] = target.profile
    if target.host:
        kwargs["host"] = target.host
        _probe(target.host)
    if target.token:
        kwargs["token"] = target.token
        kwargs["auth_type"] = "pat"
    try:
        return Config(**kwargs)
    except ValueError as err:
        where = target.host or "the workspace"
        raise AuthenticationError(f"No usable credentials for {where} ({target.source}): {one_line(err)[:200]}",
                                  _NO_CREDENTIALS_HINT) from None


def open_client(
    target: Target,
    *,
    retry_timeout_seconds: int = 60,
    http_timeout_seconds: float = 60.0,
) -> Opened:
    """Open a `WorkspaceClient` for `target`. For the local backend, start it if needed.

    Raises `ServingError` for expected failures: missing credentials, unreachable host, a local
    backend that cannot start.
    """
    set_user_agent()
    if target.kind == LOCAL:
        return _open_local(target, retry_timeout_seconds, http_timeout_seconds)
    from databricks.sdk import WorkspaceClient

    cfg = _workspace_config(target, retry_timeout_seconds, http_timeout_seconds)
    host = (cfg.host or target.host or "").rstrip("/")
    if not host:
        raise AuthenticationError(f"No workspace host configured ({target.source})", _NO_HOST_HINT)
    local_url = _local_server_url(target.data_dir)
    is_local = bool(local_url and _same_host(host, local_url))
    cloud = (_local_cloud(target.data_dir) or "aws") if is_local else cloud_of(cfg)
    return Opened(WorkspaceClient(config=cfg), target, host, cloud, is_local)


def uses_local_backend(target: Target) -> bool:
    """Whether `target` is the local backend (chosen, or a host that is the running local backend)."""
    if target.kind == LOCAL:
        return True
    local_url = _local_server_url(target.data_dir)
    return bool(target.host and local_url and _same_host(target.host, local_url))


def describe_default(data_dir: str | None = None) -> str:
    """One line naming the backend the magics will use (for `%load_ext`)."""
    try:
        return default_target(data_dir).describe()
    except ServingError as err:  # pragma: no cover - default_target raises nothing today
        return str(err)
