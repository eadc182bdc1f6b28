"""Endpoints shared by the API and magics tests (each model server takes seconds to start).

`shared_iris_endpoint` creates one endpoint serving main.ml.iris v1 and v2 (traffic 50/50) once per
test session and hands its name to every module that asks; tests must not change it (they use their
own endpoints for updates, stop/start and delete). The session's local backend, and with it every
endpoint, goes away at the end of the session.
"""
from __future__ import annotations

import threading

from tests.conftest import unique

_lock = threading.Lock()
_cache: dict[tuple[str, str], str] = {}


def shared_iris_endpoint(local_backend, iris_models) -> str:
    from jupyter_serving import api

    key = (local_backend.url, "iris")
    with _lock:
        if key in _cache:
            return _cache[key]
        client = api.ServingClient.connect()
        name = unique("iris-shared")
        v1, v2 = iris_models["versions"][:2]
        client.create(name, {
            "served_entities": [
                api.served_entity(iris_models["name"], v1),
                api.served_entity(iris_models["name"], v2),
            ],
            "traffic_config": {"routes": [
                {"served_model_name": f"iris-{v1}", "traffic_percentage": 50},
                {"served_model_name": f"iris-{v2}", "traffic_percentage": 50},
            ]},
        }, tags={"suite": "shared"}, timeout=180)
        _cache[key] = name
        return name
