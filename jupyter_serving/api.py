"""The plain Python API: model serving over databricks-sdk's `WorkspaceClient`. No IPython here.

    from jupyter_serving import api
    client = api.connect()                       # or api.connect(local=True), connect(profile="dev")
    client.create("iris", model="main.ml.iris", version=1)
    client.query("iris", df)                     # -> QueryResult (.frame is a DataFrame)

The same client backs the magics, the widgets and the JupyterLab panel. Every expected failure
raises a `ServingError` (see `jupyter_serving.errors`) whose message is one line: what is wrong and
how to fix it. Requests go through the SDK's typed methods where the SDK can express them, and
through `WorkspaceClient.api_client.do` where it cannot (stop/start, per-entity query, workload
types missing from the SDK enum, queries that must not be retried).
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from . import rules
from .arguments import parse_permission_level, parse_principal, routes_to_traffic_config
from .connection import Opened, Target, open_client, resolve_target
from .errors import (
    BackendError,
    ConflictError,
    DeploymentFailedError,
    InvalidInputError,
    NotFoundError,
    QueryError,
    ServingError,
    ServingTimeoutError,
    ThrottledError,
    _server_message,
    from_sdk_error,
    one_line,
)
from .query_body import Body, body_from_value, parse_body, request_bytes
from .results import QueryResult, make_result
from .status import EndpointStatus, entity_list, traffic_of

__all__ = [
    "ServingClient",
    "EndpointStatus",
    "QueryResult",
    "ServingError",
    "connect",
    "get_client",
    "set_client",
    "current_client",
    "disconnect",
    "served_entity",
]

ProgressCallback = Callable[[EndpointStatus, float], None]

DEFAULT_WAIT_TIMEOUT = 1200.0  # the SDK waiter's 20 minutes
DEFAULT_QUERY_TIMEOUT = 60.0
_ENTITY_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def served_entity(
    model: str,
    version: str | int | None = None,
    *,
    name: str | None = None,
    workload_type: str | None = None,
    workload_size: str | None = None,
    min_concurrency: int | None = None,
    max_concurrency: int | None = None,
    scale_to_zero: bool | None = None,
    environment_vars: Mapping[str, str] | None = None,
) -> dict:
    """A `served_entities[]` item for `create(config=...)` / `update_config(config=...)`."""
    entity: dict[str, Any] = {"entity_name": model}
    if version not in (None, ""):
        entity["entity_version"] = str(version)
    if name:
        entity["name"] = name
    if workload_type:
        entity["workload_type"] = workload_type
    if workload_size:
        entity["workload_size"] = workload_size
    if min_concurrency is not None:
        entity["min_provisioned_concurrency"] = min_concurrency
    if max_concurrency is not None:
        entity["max_provisioned_concurrency"] = max_concurrency
    if scale_to_zero is not None:
        entity["scale_to_zero_enabled"] = bool(scale_to_zero)
    if environment_vars:
        entity["environment_vars"] = dict(environment_vars)
    return entity


class _OneShotBody(io.RawIOBase):
    """A request body that databricks-sdk sends exactly once.

    The SDK retries a request with a JSON body or a seekable stream (HTTP 429 and 503 for up to
    `retry_timeout_seconds`, five minutes by default). A query must surface throttling at once, and
    `_BaseClient.do` disables retries for non-seekable streams; `__len__` and `tell` let requests
    send a Content-Length instead of chunked encoding.
    """

    def __init__(self, payload: bytes):
        super().__init__()
        self._buf = io.BytesIO(payload)
        self._len = len(payload)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._buf.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self) -> int:  # requests computes Content-Length as len() - tell()
        return self._buf.tell()

    def __len__(self) -> int:
        return self._len


def _entity_input_fields() -> tuple[str, ...]:
    from databricks.sdk.service.serving import ServedEntityInput

    return tuple(f.name for f in dataclasses.fields(ServedEntityInput))


def _as_input_entity(entity: dict, fields: Iterable[str]) -> dict:
    """A served entity as GET returns it -> the input form PUT /config accepts."""
    out = {k: v for k, v in entity.items() if k in set(fields) and v is not None}
    size = out.get("workload_size")
    if size and ("min_provisioned_concurrency" in out or "max_provisioned_concurrency" in out):
        low, high = rules.WORKLOAD_SIZES.get(size, (None, None))
        cur = (out.get("min_provisioned_concurrency"), out.get("max_provisioned_concurrency"))
        if cur in ((low, high), (0, high)):
            out.pop("min_provisioned_concurrency", None)
            out.pop("max_provisioned_concurrency", None)
        else:
            out.pop("workload_size", None)
    return out


def _validate_name(name: Any) -> str:
    try:
        rules.validate_endpoint_name(name)
    except rules.RuleViolation as err:
        hint = "" if re.search(r"\b(use|choose)\b", err.message) else "Name the endpoint, e.g. `%serve status NAME`."
        raise InvalidInputError(err.message, hint, error_code=err.error_code) from None
    return name


def _validate_entity_name(entity: Any) -> str:
    if not isinstance(entity, str) or not _ENTITY_NAME_RE.match(entity):
        raise InvalidInputError(f"Served entity name '{entity}' is invalid",
                                "Use the entity's name as `%serve status NAME` shows it.")
    return entity


def _rule_error(err: rules.RuleViolation) -> InvalidInputError:
    return InvalidInputError(err.message, error_code=err.error_code)


def _typed_expressible(cls: Any, value: dict) -> bool:
    """True when the SDK dataclass round-trips `value` without losing anything."""
    try:
        return cls.from_dict(value).as_dict() == json.loads(json.dumps(value))
    except Exception:  # noqa: BLE001 - anything unusual goes through api_client.do
        return False


def _tail(text: str, tail: int | None) -> str:
    if not tail or tail <= 0:
        return text
    lines = text.splitlines()
    return "\n".join(lines[-tail:])


class ServingClient:
    """Model serving through databricks-sdk. Build one with `ServingClient.connect(...)`,
    `jupyter_serving.api.connect(...)`, or wrap an existing `WorkspaceClient`.

    Thread-safe for concurrent calls (widgets poll from threads).
    """

    def __init__(
        self,
        workspace: Any,
        *,
        cloud: str | None = None,
        is_local: bool | None = None,
        target: Target | None = None,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ):
        from .connection import set_user_agent

        set_user_agent()
        self.workspace = workspace
        self.host: str = (workspace.config.host or "").rstrip("/")
        if cloud is None:
            from .connection import _cloud_of

            cloud = _cloud_of(workspace.config, self.host)
        self.cloud = cloud
        self.is_local = bool(is_local)
        self.target = target
        self.query_timeout = float(query_timeout)
        self.poll_max_interval = 1.0 if self.is_local else 5.0
        self._query_clients: dict[float, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def from_opened(cls, opened: Opened, **kwargs) -> "ServingClient":
        return cls(opened.workspace, cloud=opened.cloud, is_local=opened.is_local, target=opened.target,
                   **kwargs)

    @classmethod
    def connect(
        cls,
        *,
        profile: str | None = None,
        host: str | None = None,
        local: bool = False,
        data_dir: str | None = None,
        token: str | None = None,
        retry_timeout_seconds: int = 60,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> "ServingClient":
        """Resolve the backend (explicit choice, else a configured workspace, else the local
        backend started on demand) and open a client for it."""
        target = resolve_target(profile=profile, host=host, local=local, data_dir=data_dir, token=token)
        opened = open_client(target, retry_timeout_seconds=retry_timeout_seconds)
        return cls.from_opened(opened, query_timeout=query_timeout)

    @property
    def backend(self) -> str:
        """One line naming the backend (never the token)."""
        return f"the local backend at {self.host}" if self.is_local else f"the Databricks workspace {self.host}"

    def __repr__(self) -> str:
        return f"<ServingClient {self.backend}>"

    # ------------------------------------------------------------------------------------------
    # low-level helpers

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

    def _call(self, fn: Callable[[], Any], *, what: str, not_found_hint: str = "",
              conflict_hint: str = "", hint: str = "") -> Any:
        try:
            return fn()
        except ServingError:
            raise
        except Exception as err:  # noqa: BLE001 - mapped or re-raised by from_sdk_error
            raise from_sdk_error(err, what=what, host=self.host, not_found_hint=not_found_hint,
                                 conflict_hint=conflict_hint, hint=hint) from None

    def _endpoint_not_found(self, name: str) -> NotFoundError:
        return NotFoundError(f"No serving endpoint named '{name}'",
                             "List the endpoints with `%serve list` (names are case-sensitive).",
                             error_code="RESOURCE_DOES_NOT_EXIST")

    # ------------------------------------------------------------------------------------------
    # reading

    def get(self, name: str) -> EndpointStatus:
        """The endpoint's current state and config."""
        _validate_name(name)
        try:
            raw = self._api.do("GET", f"/api/2.0/serving-endpoints/{name}", headers=self._headers())
        except Exception as err:  # noqa: BLE001
            mapped = from_sdk_error(err, what=f"Reading endpoint '{name}'", host=self.host)
            if isinstance(mapped, NotFoundError):
                raise self._endpoint_not_found(name) from None
            raise mapped from None
        return EndpointStatus(raw)

    status = get

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except NotFoundError:
            return False

    def _list_raw(self) -> list[dict]:
        res = self._call(lambda: self._api.do("GET", "/api/2.0/serving-endpoints", headers=self._headers()),
                         what="Listing endpoints")
        return list((res or {}).get("endpoints") or [])

    def names(self) -> list[str]:
        """Endpoint names, sorted (what completion offers)."""
        return sorted(e.get("name", "") for e in self._list_raw() if e.get("name"))

    def list(self, *, details: bool = True) -> pd.DataFrame:
        """All endpoints: name, state, update_state, entities, traffic, creator, updated.

        The list API summarizes configs without traffic; with `details` each endpoint is read
        (in parallel) to fill the traffic column.
        """
        raw = self._list_raw()
        if details and raw and any("traffic_config" not in (e.get("config") or {}) for e in raw) and len(raw) <= 200:
            def detail(e: dict) -> dict:
                try:
                    return self.get(e["name"]).raw
                except ServingError:
                    return e
            with ThreadPoolExecutor(max_workers=8) as pool:
                raw = list(pool.map(detail, raw))
        rows = []
        for e in raw:
            st = EndpointStatus(e)
            rows.append({
                "name": st.name,
                "state": "STOPPED" if st.is_stopped else st.ready,
                "update_state": st.config_update,
                # while an endpoint is being created it has only a pending config
                "entities": st.entities_text(st.entities or st.pending_entities),
                "traffic": st.traffic_text(st.traffic or traffic_of(st.pending_config)),
                "creator": st.creator,
                "updated": pd.to_datetime(e.get("last_updated_timestamp"), unit="ms", utc=True)
                if e.get("last_updated_timestamp") else pd.NaT,
            })
        frame = pd.DataFrame(rows, columns=["name", "state", "update_state", "entities", "traffic", "creator",
                                            "updated"])
        return frame.sort_values("name", ignore_index=True) if len(frame) else frame

    # ------------------------------------------------------------------------------------------
    # waiting

    def wait(
        self,
        name: str,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        until: Callable[[EndpointStatus], bool] | None = None,
        raise_on_failure: bool = True,
    ) -> EndpointStatus:
        """Poll until the endpoint settles (no update in progress), or `until(status)` holds.

        `on_progress(status, elapsed_seconds)` runs after every poll. KeyboardInterrupt stops
        waiting and propagates; the deployment itself goes on.
        """
        start = time.monotonic()
        interval = 0.25
        deploying: list[str] = []  # entities of the pending config: a failed update drops it
        while True:
            status = self.get(name)
            deploying = [e.get("name") for e in status.pending_entities] or deploying
            elapsed = time.monotonic() - start
            if on_progress is not None:
                on_progress(status, elapsed)
            done = until(status) if until is not None else status.is_settled
            if done or (until is not None and status.update_failed and status.is_settled):
                if raise_on_failure and status.update_failed:
                    raise self._failed(status, deploying)
                return status
            if elapsed >= timeout:
                raise ServingTimeoutError(
                    f"Endpoint '{name}' is still '{status.state}' after {timeout:.0f} s",
                    f"The deployment goes on; follow it with `%serve status {name} --watch`.")
            time.sleep(min(interval, max(0.05, timeout - elapsed)))
            interval = min(interval * 2, self.poll_max_interval)

    def _failed(self, status: EndpointStatus, deploying: list[str] | None = None) -> DeploymentFailedError:
        entity, reason = None, None
        for e in status.pending_entities or status.entities:
            if (e.get("state") or {}).get("deployment") in ("DEPLOYMENT_FAILED", "DEPLOYMENT_ABORTED"):
                entity = e.get("name")
                break
        if entity is None:
            # A failed update's entities are gone from the endpoint; their build logs say what broke.
            for candidate in [n for n in deploying or [] if n not in status.entity_names] or (deploying or []):
                reason = self._build_log_error(status.name, candidate)
                if reason:
                    entity = candidate
                    break
        entity = entity or (status.entity_names[0] if status.entity_names else "ENTITY")
        reason = f"served entity '{entity}': {reason}" if reason else status.failure_reason().rstrip(". ")
        keeps = " The previous config keeps serving." if status.ready == "READY" else ""
        return DeploymentFailedError(
            f"Endpoint '{status.name}' {status.config_update.lower().replace('_', ' ')}: {reason}.{keeps}",
            f"See `%serve logs {status.name} {entity} --build`, fix the model, then update the endpoint.",
            error_code=status.config_update)

    def _build_log_error(self, name: str, entity: str) -> str | None:
        """The last exception line of an entity's build logs, or None."""
        try:
            text = self.workspace.serving_endpoints.build_logs(name=name, served_model_name=entity).logs or ""
        except Exception:  # noqa: BLE001 - only a better message is at stake
            return None
        errors = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[\w.]*(Error|Exception)\b", ln)]
        return errors[-1][:300] if errors else None

    # ------------------------------------------------------------------------------------------
    # creating and updating

    def latest_version(self, model: str) -> str:
        """The highest registered version of `model` (Unity Catalog, the workspace registry, or the
        local backend's MLflow registry)."""
        errors: list[str] = []
        if self.is_local:
            return self._latest_local_version(model)
        try:
            versions = [int(v.version) for v in self.workspace.model_versions.list(full_name=model)
                        if v.version is not None]
            if versions:
                return str(max(versions))
            errors.append("no versions in Unity Catalog")
        except Exception as err:  # noqa: BLE001 - fall back to the workspace registry
            errors.append(_server_message(err))
        try:
            latest = [int(v.version) for v in self.workspace.model_registry.get_latest_versions(name=model)
                      if v.version is not None]
            if latest:
                return str(max(latest))
        except Exception as err:  # noqa: BLE001
            errors.append(_server_message(err))
        raise InvalidInputError(f"No version given for model '{model}' and its latest version could not be "
                                f"looked up ({'; '.join(errors)[:200]})",
                                "Give the version explicitly, e.g. --version 1 / version=1.")

    def _latest_local_version(self, model: str) -> str:
        """The local backend's registry is MLflow's (SQLite in its data dir); mlflow is imported here
        only, when a version must be looked up."""
        from .localctl import Paths, home_dir

        uri = Paths(home_dir(self.target.data_dir if self.target else None)).mlflow_uri
        try:
            from mlflow.tracking import MlflowClient

            found = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name='{model}'")
            versions = [int(v.version) for v in found]
        except Exception as err:  # noqa: BLE001
            raise InvalidInputError(f"No version given for model '{model}' and the local registry could not "
                                    f"be read ({one_line(err)[:200]})", "Give the version, e.g. --version 1.") from None
        if not versions:
            raise NotFoundError(f"Model '{model}' is not registered in the local registry",
                                "Register it first (mlflow.register_model) or check the name "
                                "(catalog.schema.model).", error_code="RESOURCE_DOES_NOT_EXIST")
        return str(max(versions))

    def _validate_config(self, config: dict) -> None:
        entities = entity_list(config)
        if any(e.get("external_model") for e in entities):
            return  # external models have no entity_version; leave them to the server
        try:
            rules.normalize_config(config, self.cloud)
        except rules.RuleViolation as err:
            raise _rule_error(err) from None

    def create(
        self,
        name: str,
        config: Mapping | None = None,
        *,
        model: str | None = None,
        version: str | int | None = None,
        entity_name: str | None = None,
        workload_type: str | None = None,
        workload_size: str | None = None,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        scale_to_zero: bool = False,
        traffic: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | list | None = None,
        route_optimized: bool | None = None,
        description: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Create an endpoint serving `model` (one entity), or the entities of `config`.

        `config` is either the core config (`served_entities`, `traffic_config`, ...) or a full
        create request (`{"name", "config", "tags", ...}`). Validated client-side with `rules`
        before anything is sent. With `wait`, polls until the endpoint settles, calling
        `on_progress(status, elapsed)`; raises DeploymentFailedError if the deployment fails.
        """
        _validate_name(name)
        request: dict[str, Any] = {}
        if config is not None:
            if not isinstance(config, Mapping):
                raise InvalidInputError("The endpoint config must be a JSON object",
                                        'e.g. {"served_entities": [{"entity_name": "...", "entity_version": "1"}]}.')
            config = json.loads(json.dumps(dict(config), default=str))
            if "config" in config or ("name" in config and "served_entities" not in config):
                request = {k: v for k, v in config.items() if k != "config"}
                core = dict(config.get("config") or {})
                if request.get("name") not in (None, name):
                    raise InvalidInputError(f"The config names endpoint '{request['name']}' but the command "
                                            f"names '{name}'", "Make the two names agree.")
            else:
                core = config
            if model:
                raise InvalidInputError("Give either a config or a model, not both",
                                        "Put every served entity in the config, or use model=/--model.")
        else:
            if not model:
                raise InvalidInputError("Nothing to serve", "Name a model (--model catalog.schema.model) "
                                        "or give a full config (--from-json).")
            if version in (None, ""):
                version = self.latest_version(model)
            core = {"served_entities": [served_entity(
                model, version, name=entity_name, workload_type=workload_type, workload_size=workload_size,
                min_concurrency=min_concurrency, max_concurrency=max_concurrency,
                scale_to_zero=scale_to_zero)]}
        if traffic:
            core["traffic_config"] = routes_to_traffic_config(dict(traffic))
        request["name"] = name
        if tags is not None:
            tag_list = [{"key": k, "value": v} for k, v in tags.items()] if isinstance(tags, Mapping) else list(tags)
            request["tags"] = tag_list
        if route_optimized is not None:
            request["route_optimized"] = bool(route_optimized)
        if description is not None:
            request["description"] = description
        self._validate_config(core)
        request["config"] = core
        self._send_create(request)
        if not wait:
            return self.get(name)
        return self.wait(name, timeout=timeout, on_progress=on_progress)

    def _send_create(self, request: dict) -> None:
        from databricks.sdk.service.serving import EndpointCoreConfigInput, EndpointTag

        name = request["name"]
        typed_keys = {"name", "config", "tags", "route_optimized", "description"}
        what = f"Creating endpoint '{name}'"
        conflict_hint = (f"Pick another name, or change the existing endpoint with `%serve update {name} ...` "
                         f"(delete it first with `%serve delete {name} --yes` to recreate it).")
        not_found_hint = "Check the model's full name (catalog.schema.model) and version."
        if set(request) <= typed_keys and _typed_expressible(EndpointCoreConfigInput, request["config"]):
            self._call(lambda: self.workspace.serving_endpoints.create(
                name=name,
                config=EndpointCoreConfigInput.from_dict(request["config"]),
                tags=[EndpointTag.from_dict(t) for t in request["tags"]] if "tags" in request else None,
                route_optimized=request.get("route_optimized"),
                description=request.get("description"),
            ), what=what, conflict_hint=conflict_hint, not_found_hint=not_found_hint)
        else:
            self._call(lambda: self._api.do("POST", "/api/2.0/serving-endpoints", body=request,
                                            headers=self._headers(True)),
                       what=what, conflict_hint=conflict_hint, not_found_hint=not_found_hint)

    def _send_config(self, name: str, core: dict) -> None:
        from databricks.sdk.service.serving import ServedEntityInput, TrafficConfig

        what = f"Updating endpoint '{name}'"
        conflict_hint = f"Wait for the running update to finish (`%serve status {name} --watch`) and try again."
        core_keys = {"served_entities", "traffic_config"}
        typed = set(core) <= core_keys and all(
            _typed_expressible(ServedEntityInput, e) for e in core.get("served_entities") or []
        ) and ("traffic_config" not in core or _typed_expressible(TrafficConfig, core["traffic_config"]))
        if typed:
            self._call(lambda: self.workspace.serving_endpoints.update_config(
                name=name,
                served_entities=[ServedEntityInput.from_dict(e) for e in core.get("served_entities") or []],
                traffic_config=TrafficConfig.from_dict(core["traffic_config"]) if "traffic_config" in core else None,
            ), what=what, conflict_hint=conflict_hint)
        else:
            self._call(lambda: self._api.do("PUT", f"/api/2.0/serving-endpoints/{name}/config", body=core,
                                            headers=self._headers(True)),
                       what=what, conflict_hint=conflict_hint)

    def _not_updating(self, status: EndpointStatus, doing: str) -> None:
        if status.is_updating:
            pending = status.pending_config or {}
            version = pending.get("config_version")
            raise ConflictError(
                f"Endpoint '{status.name}' is already updating" + (f" (config v{version})" if version else "")
                + f"; cannot {doing} now",
                f"Wait for the update to finish (`%serve status {status.name} --watch`) and try again.",
                error_code="RESOURCE_CONFLICT")

    def _not_stopped(self, status: EndpointStatus, done: str) -> None:
        if status.is_stopped:
            raise InvalidInputError(f"Endpoint '{status.name}' is stopped and cannot be {done}",
                                    f"Start it first with `%serve start {status.name}`.", error_code="INVALID_STATE")

    def _pick_entity(self, status: EndpointStatus, entity: str | None) -> str:
        names = status.entity_names
        if entity is None:
            if len(names) == 1:
                return names[0]
            raise InvalidInputError(f"Endpoint '{status.name}' serves several entities ({', '.join(names)})",
                                    "Name one with --entity E / entity='E'.")
        if entity not in names:
            raise NotFoundError(f"Endpoint '{status.name}' has no served entity '{entity}' "
                                f"(served entities: {', '.join(names) or 'none'})",
                                "Use one of those names.")
        return entity

    def update_config(
        self,
        name: str,
        *,
        entity: str | None = None,
        model: str | None = None,
        version: str | int | None = None,
        workload_type: str | None = None,
        workload_size: str | None = None,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        scale_to_zero: bool | None = None,
        traffic: Mapping[str, int] | None = None,
        config: Mapping | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Change one served entity (`entity`, optional when there is only one) and/or the traffic,
        or replace the whole core `config`. Refused while another update runs.

        Changing the version of an entity that has its default name (`iris-1`) renames it to the new
        default (`iris-2`) and moves its traffic along.
        """
        status = self.get(name)
        self._not_updating(status, "update it")
        self._not_stopped(status, "updated")
        fields = _entity_input_fields()
        if config is not None:
            if not isinstance(config, Mapping):
                raise InvalidInputError("The endpoint config must be a JSON object",
                                        'e.g. {"served_entities": [...], "traffic_config": {...}}.')
            core = json.loads(json.dumps(dict(config.get("config", config)), default=str))
            if traffic:
                core["traffic_config"] = routes_to_traffic_config(dict(traffic))
        else:
            changes = {k: v for k, v in dict(model=model, version=version, workload_type=workload_type,
                                             workload_size=workload_size, min_concurrency=min_concurrency,
                                             max_concurrency=max_concurrency,
                                             scale_to_zero=scale_to_zero).items() if v is not None}
            if not changes and not traffic:
                raise InvalidInputError(f"Nothing to update on endpoint '{name}'",
                                        "Give --version, --model, --workload-type, --workload-size, "
                                        "--min/--max-concurrency, --scale-to-zero or --traffic.")
            entities = [_as_input_entity(e, fields) for e in status.entities]
            routes = dict(status.traffic)
            if changes:
                target = self._pick_entity(status, entity)
                ent = next(e for e in entities if e.get("name") == target)
                old_default = rules.default_entity_name(ent.get("entity_name", ""), ent.get("entity_version"))
                if model is not None:
                    ent["entity_name"] = model
                if version is not None:
                    ent["entity_version"] = str(version)
                if workload_type is not None:
                    ent["workload_type"] = workload_type
                if workload_size is not None:
                    ent["workload_size"] = workload_size
                    ent.pop("min_provisioned_concurrency", None)
                    ent.pop("max_provisioned_concurrency", None)
                if min_concurrency is not None or max_concurrency is not None:
                    ent.pop("workload_size", None)
                    if min_concurrency is not None:
                        ent["min_provisioned_concurrency"] = min_concurrency
                    if max_concurrency is not None:
                        ent["max_provisioned_concurrency"] = max_concurrency
                if scale_to_zero is not None:
                    ent["scale_to_zero_enabled"] = bool(scale_to_zero)
                if (model is not None or version is not None) and target == old_default:
                    new_name = rules.default_entity_name(ent["entity_name"], ent.get("entity_version"))
                    if new_name != target and new_name not in {e.get("name") for e in entities}:
                        ent["name"] = new_name
                        if target in routes:
                            routes = {(new_name if k == target else k): v for k, v in routes.items()}
            if traffic:
                routes = dict(traffic)
            core = {"served_entities": entities}
            if routes:
                core["traffic_config"] = routes_to_traffic_config(routes)
        self._validate_config(core)
        self._send_config(name, core)
        if not wait:
            return self.get(name)
        return self.wait(name, timeout=timeout, on_progress=on_progress)

    def set_traffic(
        self,
        name: str,
        routes: Mapping[str, int],
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Split traffic between the served entities: {"iris-1": 80, "iris-2": 20}. Validated before
        sending (names exist, integers 0-100, sum 100)."""
        status = self.get(name)
        if not isinstance(routes, Mapping) or not routes:
            raise InvalidInputError("No traffic split given", "e.g. {'iris-1': 80, 'iris-2': 20}.")
        try:
            rules.normalize_routes(routes_to_traffic_config(dict(routes)), status.entity_names)
        except rules.RuleViolation as err:
            raise _rule_error(err) from None
        self._not_updating(status, "change its traffic")
        self._not_stopped(status, "re-routed")
        fields = _entity_input_fields()
        core = {"served_entities": [_as_input_entity(e, fields) for e in status.entities],
                "traffic_config": routes_to_traffic_config(dict(routes))}
        self._validate_config(core)
        self._send_config(name, core)
        if not wait:
            return self.get(name)
        return self.wait(name, timeout=timeout, on_progress=on_progress)

    # ------------------------------------------------------------------------------------------
    # stop / start / delete

    def stop(self, name: str, *, wait: bool = True, timeout: float = 300.0,
             on_progress: ProgressCallback | None = None) -> EndpointStatus:
        """Stop the endpoint (POST .../config:stop, not in the SDK). A stopped endpoint refuses
        queries until started. Stopping a stopped endpoint does nothing."""
        status = self.get(name)
        if status.is_stopped:
            return status
        self._not_updating(status, "stop it")
        self._call(lambda: self._api.do("POST", f"/api/2.0/serving-endpoints/{name}/config:stop",
                                        headers=self._headers(True), body={}),
                   what=f"Stopping endpoint '{name}'")
        if not wait:
            return self.get(name)
        return self.wait(name, timeout=timeout, on_progress=on_progress,
                         until=lambda s: s.is_stopped and s.is_settled, raise_on_failure=False)

    def start(self, name: str, *, wait: bool = True, timeout: float = DEFAULT_WAIT_TIMEOUT,
              on_progress: ProgressCallback | None = None) -> EndpointStatus:
        """Start a stopped endpoint (POST .../config:start: a new config version with the same
        properties). Starting a running endpoint does nothing."""
        status = self.get(name)
        if not status.is_stopped:
            return status
        self._call(lambda: self._api.do("POST", f"/api/2.0/serving-endpoints/{name}/config:start",
                                        headers=self._headers(True), body={}),
                   what=f"Starting endpoint '{name}'")
        if not wait:
            return self.get(name)
        return self.wait(name, timeout=timeout, on_progress=on_progress,
                         until=lambda s: not s.is_stopped and s.is_settled)

    def delete(self, name: str) -> None:
        """Delete the endpoint. Irreversible."""
        _validate_name(name)
        try:
            self.workspace.serving_endpoints.delete(name=name)
        except Exception as err:  # noqa: BLE001
            mapped = from_sdk_error(err, what=f"Deleting endpoint '{name}'", host=self.host)
            if isinstance(mapped, NotFoundError):
                raise self._endpoint_not_found(name) from None
            raise mapped from None

    # ------------------------------------------------------------------------------------------
    # logs, schema, permissions, tags

    def _logs(self, name: str, entity: str | None, build: bool, tail: int | None) -> str:
        status = self.get(name)
        if build and entity is not None:  # a failed update's entity keeps its build logs after it is gone
            names = [entity]
        else:
            names = [self._pick_entity(status, entity)] if (entity is not None or len(status.entity_names) == 1) \
                else status.entity_names
        kind = "build logs" if build else "logs"
        parts = []
        for ent in names:
            fn = self.workspace.serving_endpoints.build_logs if build else self.workspace.serving_endpoints.logs
            res = self._call(lambda ent=ent: fn(name=name, served_model_name=ent),
                             what=f"Reading {kind} of '{name}/{ent}'")
            text = _tail(res.logs or "", tail)
            parts.append(text if len(names) == 1 else f"=== {ent} ===\n{text}")
        return "\n".join(parts)

    def logs(self, name: str, entity: str | None = None, *, tail: int | None = None) -> str:
        """Model server logs of one served entity (all entities, with headers, if not named)."""
        return self._logs(name, entity, False, tail)

    def build_logs(self, name: str, entity: str | None = None, *, tail: int | None = None) -> str:
        """Container build logs of one served entity (all entities if not named)."""
        return self._logs(name, entity, True, tail)

    def openapi(self, name: str) -> dict:
        """The endpoint's query schema (OpenAPI 3.1), built from the model signature."""
        _validate_name(name)
        res = self._call(lambda: self.workspace.serving_endpoints.get_open_api(name=name),
                         what=f"Reading the schema of '{name}'",
                         not_found_hint="List the endpoints with `%serve list`.",
                         hint="The schema needs a model logged with a signature and a READY endpoint.")
        raw = res.contents.read() if res.contents is not None else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ServingError(f"The schema of '{name}' is not JSON", "Check the server version.") from None

    schema = openapi

    def request_template(self, name: str, entity: str | None = None) -> dict:
        """A request body to start from, built from the OpenAPI schema (its example if it has one)."""
        spec = self.openapi(name)
        return request_template_from_openapi(spec, entity)

    def _endpoint_id(self, name: str) -> str:
        status = self.get(name)
        if not status.id:
            raise ServingError(f"Endpoint '{name}' has no id", "The server must return `id` for permissions.")
        return status.id

    @staticmethod
    def _permissions_frame(perms: Any) -> pd.DataFrame:
        rows = []
        for acl in perms.access_control_list or []:
            if acl.user_name:
                principal, kind = acl.user_name, "user"
            elif acl.group_name:
                principal, kind = acl.group_name, "group"
            elif acl.service_principal_name:
                principal, kind = acl.service_principal_name, "service_principal"
            else:
                principal, kind = acl.display_name, "unknown"
            for p in acl.all_permissions or []:
                rows.append({"principal": principal, "type": kind,
                             "permission_level": p.permission_level.value if p.permission_level else None,
                             "inherited": bool(p.inherited)})
        return pd.DataFrame(rows, columns=["principal", "type", "permission_level", "inherited"])

    def permissions(self, name: str) -> pd.DataFrame:
        """Who may do what: principal, type, permission_level, inherited."""
        eid = self._endpoint_id(name)
        perms = self._call(lambda: self.workspace.serving_endpoints.get_permissions(serving_endpoint_id=eid),
                           what=f"Reading permissions of '{name}'")
        return self._permissions_frame(perms)

    def grant(self, name: str, principal: str, level: str) -> pd.DataFrame:
        """Grant `level` (CAN_MANAGE, CAN_QUERY, CAN_VIEW) to a user (e-mail), `group:NAME` or
        `sp:APPLICATION_ID`. Returns the resulting permissions."""
        from databricks.sdk.service.serving import ServingEndpointAccessControlRequest

        level = parse_permission_level(level)
        who = parse_principal(principal)
        eid = self._endpoint_id(name)
        acl = ServingEndpointAccessControlRequest.from_dict({**who, "permission_level": level})
        perms = self._call(lambda: self.workspace.serving_endpoints.update_permissions(
            serving_endpoint_id=eid, access_control_list=[acl]), what=f"Granting {level} on '{name}'")
        return self._permissions_frame(perms)

    def tags(self, name: str, add: Mapping[str, str] | None = None,
             remove: Iterable[str] | None = None) -> dict[str, str]:
        """The endpoint's tags after adding `add` and removing the keys in `remove`."""
        from databricks.sdk.service.serving import EndpointTag

        add = dict(add or {})
        remove = list(remove or [])
        status = self.get(name)
        if not add and not remove:
            return status.tags
        both = set(add) & set(remove)
        if both:
            raise InvalidInputError(f"Tag '{sorted(both)[0]}' is both set and removed", "Do one or the other.")
        missing = [k for k in remove if k not in status.tags]
        if missing:
            raise NotFoundError(f"Endpoint '{name}' has no tag '{missing[0]}' "
                                f"(tags: {', '.join(status.tags) or 'none'})", "Remove an existing tag key.")
        res = self._call(lambda: self.workspace.serving_endpoints.patch(
            name=name, add_tags=[EndpointTag(key=k, value=v) for k, v in add.items()] or None,
            delete_tags=remove or None), what=f"Changing tags of '{name}'")
        return {t.key: t.value for t in res.tags or []}

    # ------------------------------------------------------------------------------------------
    # query

    def _query_api(self, timeout: float):
        """An ApiClient whose HTTP timeout is `timeout` (databricks-sdk sets it per client)."""
        from databricks.sdk.core import ApiClient

        key = round(float(timeout), 3)
        with self._lock:
            client = self._query_clients.get(key)
            if client is None:
                cfg = self.workspace.config.copy()
                inner = getattr(cfg, "_inner", None)
                if isinstance(inner, dict):
                    cfg._inner = dict(inner)  # Config.copy() shares attribute storage
                    cfg.http_timeout_seconds = key
                    client = ApiClient(cfg)
                else:  # pragma: no cover - other SDK versions: the workspace-wide timeout applies
                    client = self._api
                self._query_clients[key] = client
            return client

    def query(
        self,
        name: str,
        body: Any,
        *,
        entity: str | None = None,
        timeout: float | None = None,
        namespace: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Query the endpoint (or one served entity, ignoring the traffic split).

        `body`: a DataFrame, a dict in any Databricks format (dataframe_split/records, instances,
        inputs, params, messages, prompt, input), a list of records, or text (JSON, CSV with a
        header, `$var` looked up in `namespace`). Sent once: throttling (429) surfaces at once.
        """
        _validate_name(name)
        if entity is not None:
            _validate_entity_name(entity)
        if isinstance(body, Body):
            parsed = body
        elif isinstance(body, str):
            parsed = parse_body(body, namespace)
        else:
            parsed = body_from_value(body)
        timeout = float(timeout if timeout is not None else self.query_timeout)
        if timeout <= 0:
            raise InvalidInputError(f"Timeout must be positive, got {timeout:g}", "e.g. --timeout 30.")
        payload = request_bytes(parsed.request)
        path = (f"/serving-endpoints/{name}/served-models/{entity}/invocations" if entity
                else f"/serving-endpoints/{name}/invocations")
        api = self._query_api(timeout)
        start = time.perf_counter()
        try:
            response = api.do("POST", path, headers=self._headers(True), data=_OneShotBody(payload),
                              response_headers=["served-model-name"])
        except ValueError as err:  # a 2xx answer that is not JSON
            raise BackendError(f"Endpoint '{name}' answered something that is not JSON ({one_line(err)[:120]})",
                               f"The model must return JSON; see `%serve logs {name}`.") from None
        except Exception as err:  # noqa: BLE001
            raise self._query_error(err, name, entity, timeout) from None
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not isinstance(response, dict):
            response = {"predictions": response}
        served = response.pop("served-model-name", None) or entity
        return make_result(name, response, parsed.request, parsed.frame, latency_ms, served, entity)

    def _query_error(self, err: BaseException, name: str, entity: str | None, timeout: float) -> ServingError:
        import requests

        if isinstance(err, requests.Timeout) and not isinstance(err, requests.ConnectTimeout):
            return ServingTimeoutError(f"Query to '{name}' got no answer within {timeout:g} s",
                                       "The model may be slow or scaling up from zero; retry, or raise the "
                                       "timeout (--timeout S).")
        mapped = from_sdk_error(err, what=f"Query to '{name}'", host=self.host)
        server = _server_message(err)
        if isinstance(mapped, ThrottledError):
            return ThrottledError(
                f"Endpoint '{name}' is throttling queries (HTTP 429: {server})",
                f"Too many concurrent requests for its served entity: retry later, or raise its concurrency "
                f"(`%serve update {name} --entity {entity or 'E'} --workload-size Medium`).",
                error_code=mapped.error_code)
        if isinstance(mapped, (InvalidInputError, NotFoundError, QueryError, BackendError)):
            try:
                status = self.get(name)
            except NotFoundError:
                return self._endpoint_not_found(name)
            except ServingError:
                return mapped
            if entity is not None and entity not in status.entity_names:
                return NotFoundError(f"Endpoint '{name}' has no served entity '{entity}' "
                                     f"(served entities: {', '.join(status.entity_names) or 'none'})",
                                     "Use one of those names with --entity.")
            if status.is_stopped:
                return QueryError(f"Endpoint '{name}' is stopped and refuses queries",
                                  f"Start it with `%serve start {name}`.", error_code=mapped.error_code)
            if not status.is_ready:
                return QueryError(f"Endpoint '{name}' is not ready ({status.state}): {server}",
                                  f"Wait for it with `%serve status {name} --watch`.", error_code=mapped.error_code)
            if isinstance(mapped, InvalidInputError):
                return QueryError(f"Endpoint '{name}' refused the input: {server}",
                                  f"Check the expected input with `%serve schema {name}`.",
                                  error_code=mapped.error_code)
        return mapped


# --------------------------------------------------------------------------------------------------
# OpenAPI -> request template


_PLACEHOLDERS = {"integer": 0, "number": 0.0, "string": "", "boolean": False, "array": [], "object": {}}


def _typed_default(value: Any, kind: Any) -> Any:
    """Schemas carry param defaults as strings ("0.5", as Databricks serves them); a model's
    signature refuses a string where it expects a number, so give the default its schema type."""
    if not isinstance(value, str):
        return value
    try:
        if kind == "number":
            return float(value)
        if kind == "integer":
            return int(float(value))
    except ValueError:
        return value
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _placeholder(schema: Mapping | None) -> Any:
    if not isinstance(schema, Mapping):
        return None
    if "default" in schema:
        return _typed_default(schema["default"], schema.get("type"))
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        return {k: _placeholder(v) for k, v in schema["properties"].items()}
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return [_placeholder(schema["items"])]
    return _PLACEHOLDERS.get(kind)


def request_template_from_openapi(spec: Mapping, entity: str | None = None) -> dict:
    """Build a request body from an endpoint's OpenAPI schema (pure). Prefers the schema's own
    example, then dataframe_split, then dataframe_records, then the first alternative."""
    paths = spec.get("paths") or {}
    chosen = None
    for path, item in paths.items():
        if entity is None or f"/served-models/{entity}/" in path:
            chosen = item
            break
    if chosen is None and paths:
        chosen = next(iter(paths.values()))
    if chosen is None:
        raise ServingError("The schema has no paths", "The model needs a signature for a schema.")
    schema = (((chosen.get("post") or {}).get("requestBody") or {}).get("content") or {}).get(
        "application/json", {}).get("schema") or {}
    alternatives = schema.get("oneOf") or [schema]

    def params_of(alt: Mapping) -> dict | None:
        params = (alt.get("properties") or {}).get("params")
        if isinstance(params, Mapping) and isinstance(params.get("properties"), Mapping):
            return {k: _placeholder(v) for k, v in params["properties"].items()}
        return None

    def with_params(body: dict, alt: Mapping) -> dict:
        params = params_of(alt)
        if params:
            body["params"] = params
        return body

    by_key = {}
    for alt in alternatives:
        props = alt.get("properties") or {}
        for key in ("dataframe_split", "dataframe_records", "instances", "inputs", "messages", "prompt", "input"):
            if key in props and key not in by_key:
                by_key[key] = alt
    if "dataframe_split" in by_key:
        alt = by_key["dataframe_split"]
        examples = alt.get("examples") or []
        if examples and isinstance(examples[0], Mapping):
            ex = dict(examples[0])
            body = {"dataframe_split": ex.get("dataframe_split", ex)}
            return with_params(body, alt)
        props = alt["properties"]["dataframe_split"].get("properties") or {}
        cols = ((props.get("columns") or {}).get("items") or {}).get("enum") or []
        items = ((props.get("data") or {}).get("items") or {})
        prefix = items.get("prefixItems") or []
        row = [_placeholder(p) for p in prefix] or [None] * len(cols)
        return with_params({"dataframe_split": {"columns": list(cols), "data": [row]}}, alt)
    if "dataframe_records" in by_key:
        alt = by_key["dataframe_records"]
        item = (alt["properties"]["dataframe_records"].get("items") or {})
        return with_params({"dataframe_records": [_placeholder({**item, "type": "object"})]}, alt)
    for key in ("instances", "inputs", "messages", "prompt", "input"):
        if key in by_key:
            alt = by_key[key]
            value = _placeholder(alt["properties"][key])
            if key == "messages" and not value:
                value = [{"role": "user", "content": ""}]
            return with_params({key: value}, alt)
    first = alternatives[0] if alternatives else {}
    return _placeholder({**first, "type": "object"}) or {}


# --------------------------------------------------------------------------------------------------
# The default client (what the magics, the widgets and the lab panel share)

_default_client: ServingClient | None = None
_default_lock = threading.Lock()


def connect(
    *,
    profile: str | None = None,
    host: str | None = None,
    local: bool = False,
    data_dir: str | None = None,
    token: str | None = None,
    retry_timeout_seconds: int = 60,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> ServingClient:
    """Open a client and make it the default one. With no arguments: a configured Databricks
    workspace if there is one, else the local backend (started on demand)."""
    global _default_client
    client = ServingClient.connect(profile=profile, host=host, local=local, data_dir=data_dir, token=token,
                                   retry_timeout_seconds=retry_timeout_seconds, query_timeout=query_timeout)
    with _default_lock:
        _default_client = client
    return client


def get_client() -> ServingClient:
    """The default client, connected on first use (see `connect`)."""
    global _default_client
    with _default_lock:
        client = _default_client
    if client is not None:
        return client
    client = ServingClient.connect()
    with _default_lock:
        if _default_client is None:
            _default_client = client
        return _default_client


def current_client() -> ServingClient | None:
    """The default client if one is connected; never connects (for completion and status lines)."""
    return _default_client


def set_client(client: ServingClient | None) -> None:
    global _default_client
    with _default_lock:
        _default_client = client


def disconnect() -> None:
    set_client(None)


def describe(data_dir: str | None = None) -> str:
    """One line naming the backend in use, or the one the default resolution would pick."""
    client = current_client()
    if client is not None:
        return client.backend
    from .connection import describe_default

    return describe_default(data_dir)
