"""A stand-in `WorkspaceClient` for the fast tier of the GenAI create tests: it records the typed
databricks-sdk calls a real `ServingClient` makes (`serving_endpoints.create`,
`create_provisioned_throughput_endpoint`, `put_ai_gateway`, ...) and answers GETs from what was created,
so that the client, the magics and the form run unchanged without a backend.

Endpoints are READY as soon as they are created. Secrets: {scope: [keys]} (names only).
"""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from databricks.sdk.errors import NotFound


class FakeWorkspace:
    def __init__(self, endpoints: dict[str, dict] | None = None, secrets: dict[str, list[str]] | None = None):
        self.config = SimpleNamespace(host="https://fake.example.com", workspace_id=None)
        self.calls: list[tuple[str, dict]] = []
        self.docs: dict[str, dict] = {name: _doc(name, **doc) for name, doc in (endpoints or {}).items()}
        self.secret_store = dict(secrets or {})
        self.lock = threading.Lock()
        self.serving_endpoints = SimpleNamespace(
            create=self._create("create"),
            create_provisioned_throughput_endpoint=self._create("create_provisioned_throughput_endpoint"),
            put_ai_gateway=self._put_ai_gateway,
            update_provisioned_throughput_endpoint_config=self._record("update_provisioned_throughput_endpoint_config"),
            update_config=self._record("update_config"),
            delete=self._record("delete"))
        self.secrets = SimpleNamespace(list_scopes=self._list_scopes, list_secrets=self._list_secrets)
        self.api_client = SimpleNamespace(do=self._do)

    def sent(self, method: str) -> list[dict]:
        """The keyword arguments of every call of `method`, in order."""
        return [kw for m, kw in self.calls if m == method]

    # serving endpoints
    def _record(self, method: str):
        def call(**kwargs: Any) -> None:
            with self.lock:
                self.calls.append((method, kwargs))
        return call

    def _create(self, method: str):
        def call(**kwargs: Any) -> None:
            with self.lock:
                self.calls.append((method, kwargs))
                config = kwargs["config"].as_dict()
                gateway = kwargs.get("ai_gateway")
                self.docs[kwargs["name"]] = _doc(kwargs["name"], config=config,
                                                 ai_gateway=gateway.as_dict() if gateway is not None else None)
        return call

    def _put_ai_gateway(self, *, name: str, **kwargs: Any) -> None:
        with self.lock:
            self.calls.append(("put_ai_gateway", {"name": name, **kwargs}))
            self.docs[name]["ai_gateway"] = {k: v.as_dict() if hasattr(v, "as_dict") else [x.as_dict() for x in v]
                                             for k, v in kwargs.items() if v is not None}

    def _do(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        with self.lock:
            self.calls.append((f"{method} {path}", {"body": body}))
            if method == "GET" and path == "/api/2.0/serving-endpoints":
                return {"endpoints": [{"name": n} for n in self.docs]}
            name = path.removeprefix("/api/2.0/serving-endpoints/")
            if method == "GET" and name in self.docs:
                return self.docs[name]
            if method == "GET":
                raise NotFound(f"Serving endpoint with name {name} does not exist.")
            return {}

    # secrets (names only)
    def _list_scopes(self):
        return [SimpleNamespace(name=s, backend_type="DATABRICKS") for s in sorted(self.secret_store)]

    def _list_secrets(self, scope: str):
        if scope not in self.secret_store:
            raise NotFound(f"Scope {scope} does not exist!")
        return [SimpleNamespace(key=k, last_updated_timestamp=0) for k in self.secret_store[scope]]


def _doc(name: str, config: dict | None = None, ai_gateway: dict | None = None, task: str | None = None) -> dict:
    config = dict(config or {"served_entities": [{"name": "m-1", "entity_name": "m", "entity_version": "1"}]})
    from jupyter_serving.core.rules import default_entity_name

    entities = [{"name": default_entity_name(e.get("entity_name", ""), e.get("entity_version")), **e,
                 "state": {"deployment": "DEPLOYMENT_READY"}} for e in config.get("served_entities") or []]
    routes = (config.get("traffic_config") or {}).get("routes") or [
        {"served_model_name": e.get("name"), "traffic_percentage": 100} for e in entities[:1]]
    return {"name": name, "state": {"ready": "READY", "config_update": "NOT_UPDATING"}, "task": task,
            "config": {"config_version": 1, "served_entities": entities, "traffic_config": {"routes": routes}},
            "ai_gateway": ai_gateway}


def fake_client(workspace: FakeWorkspace):
    """A real `ServingClient` over `workspace` (a Databricks-like workspace on AWS)."""
    from jupyter_serving.client.service import ServingClient

    return ServingClient(workspace, cloud="aws", is_local=False)
