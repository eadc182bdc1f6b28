"""Jupyter server extension behind the JupyterLab "Model Serving" sidebar.

REST handlers under `{base_url}jupyter-serving/api/`:

    GET    endpoints[?reconnect=1]            {"backend", "is_local", "endpoints": [...]}
    GET    endpoints/NAME                     one endpoint (same shape as a list item)
    DELETE endpoints/NAME                     {"deleted": NAME}
    POST   endpoints/NAME/stop | start        the endpoint right after the request (no waiting)
    GET    endpoints/NAME/query-template      {"template": {...}, "cell": "%%query NAME\\n{...}"}
    GET    connection                         {"backend": one line, no network}

Every call goes through the same Python API as the magics (`jupyter_serving.api.ServingClient`),
connected the same way: an explicit choice (`c.JupyterServing.profile/host/local/data_dir` in
jupyter_server_config.py), else a configured Databricks workspace (env, ~/.databrickscfg), else the
local backend started on demand. Blocking client calls run in a thread pool, never on the event loop.

Expected failures (`ServingError`) answer `{"error": {"message", "kind", "code"}}` where `message`
is one line (what is wrong, then how to fix it), with the matching HTTP status. Importing this
module is light: the API (databricks-sdk, pandas) is imported on the first request.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from traitlets import Bool, Int, Unicode
from traitlets.config import Configurable

from jupyter_serving.core.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    QueryError,
    ServingError,
    ServingTimeoutError,
    ThrottledError,
    one_line,
)
from jupyter_serving.core.query_body import compact_json

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_serving.api import ServingClient
    from jupyter_serving.core.status import EndpointStatus

NAMESPACE = "jupyter-serving"
SETTINGS_KEY = "jupyter_serving_panel"

#: HTTP status of each expected failure (the body says which one it is, in one line).
_STATUS_OF: list[tuple[type, int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (ThrottledError, 429),
    (AccessDeniedError, 403),
    (AuthenticationError, 401),
    (ConnectionFailedError, 502),
    (ServingTimeoutError, 504),
    (InvalidInputError, 400),
    (QueryError, 400),
    (BackendError, 502),
]


def http_status(err: ServingError) -> int:
    for cls, code in _STATUS_OF:
        if isinstance(err, cls):
            return code
    return 500


class JupyterServing(Configurable):
    """Which backend the Model Serving panel talks to (`c.JupyterServing.*` in jupyter_server_config.py).

    Leave everything unset to resolve it like the magics do: a configured Databricks workspace
    (DATABRICKS_HOST, DATABRICKS_CONFIG_PROFILE, the DEFAULT profile of ~/.databrickscfg), else the
    local backend, started on demand.
    """

    profile = Unicode(None, allow_none=True, config=True,
                      help="A ~/.databrickscfg profile to use (like `%serve connect --profile NAME`).")
    host = Unicode(None, allow_none=True, config=True,
                   help="A workspace URL (like `%serve connect --host URL`); the token comes from "
                        "DATABRICKS_TOKEN or a ~/.databrickscfg profile for that host.")
    local = Bool(False, config=True, help="Use the embedded local backend (like `%serve connect local`).")
    data_dir = Unicode(None, allow_none=True, config=True,
                       help="Data dir of the local backend (default $JUPYTER_SERVING_HOME or ~/.jupyter-serving).")
    retry_timeout_seconds = Int(5, config=True,
                                help="How long one panel request may retry a refused connection or a "
                                     "transient failure before it reports the error (the panel polls "
                                     "again anyway, backing off).")
    max_details = Int(100, config=True,
                      help="Read at most this many endpoints one by one to show their traffic split.")
    workers = Int(4, config=True, help="Threads running blocking client calls.")


class PanelBackend:
    """The panel's connection: one `ServingClient`, opened on first use, dropped when the backend
    cannot be reached so that a retry resolves the connection again.

    A poll never restarts a local backend that went away after the panel connected to it: only the
    first connection and an explicit retry (`reconnect=True`) start it on demand.
    """

    def __init__(self, config: JupyterServing, log: Any = None):
        self.config = config
        self.log = log
        self.executor = ThreadPoolExecutor(max_workers=max(1, config.workers),
                                           thread_name_prefix="jupyter-serving-panel")
        self._lock = threading.Lock()
        self._client: ServingClient | None = None
        self._connected_once = False

    # -- connection --------------------------------------------------------------------------------
    def _target(self):
        from jupyter_serving.client.connection import resolve_target

        c = self.config
        return resolve_target(profile=c.profile or None, host=c.host or None, local=c.local,
                              data_dir=c.data_dir or None)

    def describe(self) -> str:
        """One line naming the backend, without network I/O (nothing is started)."""
        with self._lock:
            client = self._client
        if client is not None:
            return client.backend
        try:
            return self._target().describe()
        except ServingError as err:
            return err.one_line("magic")

    def client(self, reconnect: bool = False) -> ServingClient:
        from jupyter_serving.api import ServingClient
        from jupyter_serving.client.connection import LOCAL

        with self._lock:
            if reconnect:
                self._client = None
            if self._client is not None:
                return self._client
            target = self._target()
            if target.kind == LOCAL and self._connected_once and not reconnect:
                from jupyter_serving.client import localctl

                if localctl.needs_restart(target.data_dir):
                    raise ConnectionFailedError(
                        "The local backend is not running",
                        "Retry to start it, or run `jupyter-serving local start`.")
            c = self.config
            client = ServingClient.connect(profile=c.profile or None, host=c.host or None, local=c.local,
                                           data_dir=c.data_dir or None,
                                           retry_timeout_seconds=c.retry_timeout_seconds)
            self._client = client
            self._connected_once = True
            if self.log is not None:
                self.log.info("jupyter-serving panel: connected to %s", client.backend)
            return client

    def drop(self, client: ServingClient | None = None) -> None:
        with self._lock:
            if client is None or self._client is client:
                self._client = None

    def call(self, fn: Callable[[ServingClient], Any], reconnect: bool = False) -> Any:
        """Run `fn(client)` (in a worker thread). A connection failure drops the client."""
        client = self.client(reconnect)
        try:
            return fn(client)
        except (ConnectionFailedError, AuthenticationError):
            self.drop(client)
            raise

    async def run(self, fn: Callable[[ServingClient], Any], reconnect: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: self.call(fn, reconnect))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------------------------------
# What the panel shows (pure functions of the endpoint JSON)


def badge_of(st: EndpointStatus) -> str:
    """ready / updating / update failed / stopped / not ready."""
    if st.is_stopped:
        return "stopped"
    if st.is_updating:
        return "updating"
    if st.update_failed:
        return "update failed"
    if st.ready == "READY":
        return "ready"
    return "not ready"


def _entities_json(entities: list[dict], traffic: dict[str, int]) -> list[dict]:
    from jupyter_serving.core.status import describe_entity_model, describe_workload

    out = []
    for e in entities:
        name = e.get("name")
        pct = traffic.get(name) if traffic else None
        if pct is None and not traffic and len(entities) == 1:
            pct = 100
        state = e.get("state") or {}
        out.append({
            "name": name,
            "entity_name": e.get("entity_name") or (e.get("external_model") or {}).get("name"),
            "entity_version": e.get("entity_version"),
            "model": describe_entity_model(e),
            "workload": describe_workload(e),
            "workload_type": e.get("workload_type") or "CPU",
            "workload_size": e.get("workload_size"),
            "scale_to_zero": bool(e.get("scale_to_zero_enabled")),
            "traffic": pct,
            "deployment": state.get("deployment"),
            "message": state.get("deployment_state_message") or "",
        })
    return out


def invocation_url(host: str | None, name: str) -> str | None:
    """`{host}/serving-endpoints/NAME/invocations`, or None without a host."""
    from urllib.parse import quote

    return f"{host.rstrip('/')}/serving-endpoints/{quote(name, safe='')}/invocations" if host else None


def endpoint_json(st: EndpointStatus, host: str | None = None) -> dict:
    """One endpoint as the panel needs it (`host`: the workspace URL, for the invocation URL)."""
    from jupyter_serving.core.status import traffic_of

    badge = badge_of(st)
    pending = st.pending_config
    message = ""
    if badge == "update failed":
        message = st.failure_reason()
    elif badge == "not ready" and st.messages:
        message = st.messages[0]
    return {
        "name": st.name,
        "badge": badge,
        "state": st.state,
        "ready": st.ready,
        "config_update": st.config_update,
        "suspend": st.suspend,
        "config_version": st.config_version,
        "updated": st.raw.get("last_updated_timestamp"),
        "created": st.raw.get("creation_timestamp"),
        "creator": st.creator,
        "permission_level": st.raw.get("permission_level"),
        "entities": _entities_json(st.entities, st.traffic),
        "pending": None if not pending else {
            "config_version": pending.get("config_version"),
            "entities": _entities_json(st.pending_entities, traffic_of(pending)),
        },
        "message": one_line(message, 300) if message else "",
        "url": st.endpoint_url or invocation_url(host, st.name),
    }


def list_statuses(client: ServingClient, max_details: int = 100) -> list[EndpointStatus]:
    """Every endpoint with its traffic split (the raw list, with details read where it lacks them)."""
    from jupyter_serving.core.status import EndpointStatus

    statuses = [EndpointStatus(e) for e in client.list_raw(details=True, max_details=max_details)]
    return sorted(statuses, key=lambda s: s.name.lower())


def query_cell(name: str, template: dict) -> str:
    return f"%%query {name}\n{compact_json(template)}"


# --------------------------------------------------------------------------------------------------
# Handlers


class _Base(APIHandler):
    #: For jupyter_server's authorizer (JupyterHub RBAC and the like): read for GET, write for
    #: POST/DELETE on the "jupyter_serving" resource.
    auth_resource = "jupyter_serving"

    @property
    def panel(self) -> PanelBackend:
        return self.settings[SETTINGS_KEY]

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=str))

    def fail(self, err: BaseException) -> None:
        if isinstance(err, ServingError):
            self.reply({"error": {"message": err.one_line("magic"), "kind": type(err).__name__,
                                  "code": err.error_code}}, http_status(err))
            return
        self.log.exception("jupyter-serving panel: unexpected error")
        self.reply({"error": {"message": f"Unexpected error: {type(err).__name__}: {one_line(err, 300)}",
                              "kind": "InternalError", "code": None}}, 500)

    async def call(self, fn: Callable[[ServingClient], Any], reconnect: bool = False) -> Any:
        return await self.panel.run(fn, reconnect)


class ConnectionHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        loop = asyncio.get_running_loop()
        backend = await loop.run_in_executor(self.panel.executor, self.panel.describe)
        self.reply({"backend": backend})


class EndpointsHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        reconnect = self.get_argument("reconnect", "") in ("1", "true", "yes")
        max_details = self.panel.config.max_details

        def work(client: ServingClient) -> dict:
            statuses = list_statuses(client, max_details)
            host = (getattr(client, "host", None) or "").rstrip("/")
            return {"backend": client.backend, "is_local": client.is_local,
                    "endpoints": [endpoint_json(s, host) for s in statuses]}
        try:
            self.reply(await self.call(work, reconnect))
        except Exception as err:  # noqa: BLE001 - reported as JSON
            self.fail(err)


class EndpointHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str):
        try:
            st = await self.call(lambda c: c.get(name))
            self.reply(endpoint_json(st))
        except Exception as err:  # noqa: BLE001
            self.fail(err)

    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str):
        try:
            await self.call(lambda c: c.delete(name))
            self.reply({"deleted": name})
        except Exception as err:  # noqa: BLE001
            self.fail(err)


class EndpointActionHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str, action: str):
        def work(client: ServingClient):
            if action == "stop":
                return client.stop(name, wait=False)
            return client.start(name, wait=False)
        try:
            self.reply(endpoint_json(await self.call(work)))
        except Exception as err:  # noqa: BLE001
            self.fail(err)


class QueryTemplateHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str):
        entity = self.get_argument("entity", None) or None
        try:
            template = await self.call(lambda c: c.request_template(name, entity))
            self.reply({"name": name, "template": template, "cell": query_cell(name, template)})
        except Exception as err:  # noqa: BLE001
            self.fail(err)


_NAME = r"([^/]+)"


def setup_handlers(web_app: Any, panel: PanelBackend) -> None:
    base = url_path_join(web_app.settings["base_url"], NAMESPACE, "api")
    web_app.settings[SETTINGS_KEY] = panel
    web_app.add_handlers(".*$", [
        (url_path_join(base, "connection"), ConnectionHandler),
        (url_path_join(base, "endpoints"), EndpointsHandler),
        (url_path_join(base, "endpoints", _NAME), EndpointHandler),
        (url_path_join(base, "endpoints", _NAME, "(stop|start)"), EndpointActionHandler),
        (url_path_join(base, "endpoints", _NAME, "query-template"), QueryTemplateHandler),
    ])


def load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers (called through `jupyter_serving._load_jupyter_server_extension`)."""
    config = JupyterServing(parent=server_app)
    panel = PanelBackend(config, server_app.log)
    setup_handlers(server_app.web_app, panel)
    server_app.log.info("jupyter-serving: Model Serving panel API at %s",
                        url_path_join(server_app.web_app.settings["base_url"], NAMESPACE, "api"))
