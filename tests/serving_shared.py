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


class saturated:
    """Keep an endpoint's concurrency full of slow requests (the sleep model) while the block runs.

    Workers resend as soon as a request ends or is refused, so a probe that slipped into a free slot
    frees it to a worker within milliseconds; probes then get 429.
    """

    def __init__(self, local_backend, endpoint: str, workers: int = 6, sleep_ms: int = 1500):
        import requests

        self.url = f"{local_backend.url}/serving-endpoints/{endpoint}/invocations"
        self.headers = {"Authorization": f"Bearer {local_backend.token}"}
        self.body = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": sleep_ms}}
        self.stop = threading.Event()
        self.session_factory = requests.Session
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self.statuses: list[int] = []

    def _work(self) -> None:
        session = self.session_factory()
        while not self.stop.is_set():
            try:
                resp = session.post(self.url, json=self.body, headers=self.headers, timeout=30)
                self.statuses.append(resp.status_code)
            except Exception:  # noqa: BLE001 - keep saturating
                pass
            self.stop.wait(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        return False
