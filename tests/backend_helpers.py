"""Plain-REST helpers for backend tests (what `curl` would do), with polling instead of sleeps."""
from __future__ import annotations

import requests

from tests.conftest import poll


class Rest:
    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=60, **kwargs)

    def get(self, name: str) -> dict:
        resp = self.call("GET", f"/api/2.0/serving-endpoints/{name}")
        resp.raise_for_status()
        return resp.json()

    def create(self, name: str, entities: list[dict], routes: list[dict] | None = None, **extra) -> requests.Response:
        config: dict = {"served_entities": entities}
        if routes is not None:
            config["traffic_config"] = {"routes": routes}
        return self.call("POST", "/api/2.0/serving-endpoints", json={"name": name, "config": config, **extra})

    def update(self, name: str, entities: list[dict], routes: list[dict] | None = None) -> requests.Response:
        body: dict = {"served_entities": entities}
        if routes is not None:
            body["traffic_config"] = {"routes": routes}
        return self.call("PUT", f"/api/2.0/serving-endpoints/{name}/config", json=body)

    def query(self, name: str, body: dict, entity: str | None = None) -> requests.Response:
        path = f"/serving-endpoints/{name}/served-models/{entity}/invocations" if entity else \
            f"/serving-endpoints/{name}/invocations"
        return self.call("POST", path, json=body)

    def wait_settled(self, name: str, timeout: float = 120.0) -> dict:
        """Poll until no update is in progress; returns the endpoint."""
        def settled():
            doc = self.get(name)
            return doc if doc["state"]["config_update"] != "IN_PROGRESS" else None
        return poll(settled, timeout, 0.2, f"endpoint {name} to settle")

    def wait_ready(self, name: str, timeout: float = 120.0) -> dict:
        """Poll until READY and settled (a failed update that leaves it NOT_READY ends the wait too)."""
        def ready():
            doc = self.get(name)
            state = doc["state"]
            if state["config_update"] == "UPDATE_FAILED" and state["ready"] == "NOT_READY":
                return doc
            return doc if state["ready"] == "READY" and state["config_update"] != "IN_PROGRESS" else None
        doc = poll(ready, timeout, 0.2, f"endpoint {name} to be ready")
        assert doc["state"] == {"ready": "READY", "config_update": "NOT_UPDATING", "suspend": "NOT_SUSPENDED"}, doc
        return doc

    def delete(self, name: str) -> None:
        self.call("DELETE", f"/api/2.0/serving-endpoints/{name}")


def entity(model: str, version: str, **fields) -> dict:
    return {"entity_name": model, "entity_version": version, "workload_size": "Small",
            "scale_to_zero_enabled": False, **fields}
