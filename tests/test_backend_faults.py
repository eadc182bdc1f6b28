"""Faults: a model server killed under load, a failing update under load, a backend restart."""
from __future__ import annotations

import collections
import os
import re
import signal
import threading
import time

import pytest
import requests

from jupyter_serving.client import localctl
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique


class Load:
    """Continuous queries from `workers` threads until stopped (bounded by `max_seconds`)."""

    def __init__(self, rest: Rest, name: str, body: dict, workers: int = 2, max_seconds: float = 90.0):
        self.url = f"{rest.url}/serving-endpoints/{name}/invocations"
        self.headers = {"Authorization": rest.session.headers["Authorization"]}
        self.body = body
        self.results: collections.Counter = collections.Counter()
        self.served_by: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                resp = session.post(self.url, json=self.body, headers=self.headers, timeout=60)
                self.results[resp.status_code] += 1
                self.served_by[resp.headers.get("served-model-name")] += 1
                if resp.status_code != 200:
                    self.failures.append(f"{resp.status_code} {resp.text[:200]}")
            except requests.RequestException as exc:
                self.results["exception"] += 1
                self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=70)

    def total(self) -> int:
        return sum(self.results.values())


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


def _server_pid(rest: Rest, name: str, entity_name: str) -> int:
    build = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/{entity_name}/build-logs").json()
    return int(re.search(r"pid (\d+)", build["logs"]).group(1))


def test_killed_model_server_recovers_under_load(rest, iris_models, backend_home):
    name = unique("crash")
    model, v1 = iris_models["name"], iris_models["versions"][0]
    assert rest.create(name, [entity(model, v1)]).status_code == 200
    try:
        rest.wait_ready(name)
        log = backend_home / "logs" / rest.get(name)["id"] / f"iris-{v1}.log"
        body = {"dataframe_records": iris_models["X"].head(2).to_dict("records")}
        with Load(rest, name, body) as load:
            poll(lambda: load.total() >= 20, 30, 0.05, "load to start")
            os.kill(_server_pid(rest, name, f"iris-{v1}"), signal.SIGKILL)
            poll(lambda: log.read_text().count("starting scoring server") == 2, 30, 0.1, "a restart")
            served_before = load.total()
            poll(lambda: rest.get(name)["config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_READY"
                 and load.total() > served_before + 20, 60, 0.1, "recovery under load")
        assert load.failures == [], load.failures[:5]
        doc = rest.get(name)
        assert doc["state"]["ready"] == "READY"
    finally:
        rest.delete(name)


def test_failing_update_under_load_keeps_old_config(rest, iris_models, broken_model):
    name = unique("failupd")
    model, v1 = iris_models["name"], iris_models["versions"][0]
    assert rest.create(name, [entity(model, v1)]).status_code == 200
    try:
        rest.wait_ready(name)
        body = {"dataframe_records": iris_models["X"].head(2).to_dict("records")}
        with Load(rest, name, body) as load:
            poll(lambda: load.total() >= 10, 30, 0.05, "load to start")
            resp = rest.update(name, [entity(broken_model["name"], broken_model["version"])])
            assert resp.status_code == 200
            pending = resp.json()
            assert pending["state"] == {"ready": "READY", "config_update": "IN_PROGRESS", "suspend": "NOT_SUSPENDED"}
            assert pending["pending_config"]["config_version"] == 2
            doc = rest.wait_settled(name)
            after = load.total()
            poll(lambda: load.total() > after + 10, 30, 0.05, "queries after the failure")
        assert load.failures == [], load.failures[:5]
        assert set(load.served_by) == {f"iris-{v1}"}
        assert doc["state"]["config_update"] == "UPDATE_FAILED" and doc["state"]["ready"] == "READY"
        assert "pending_config" not in doc
        assert doc["config"]["config_version"] == 1
        assert [e["name"] for e in doc["config"]["served_entities"]] == [f"iris-{v1}"]
        logs = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/broken-1/build-logs",
                         json={"config_version": 2}).json()["logs"]
        assert "weights are corrupt" in logs and "FAILED" in logs
        # a later good update goes through, with a fresh config version
        assert rest.update(name, [entity(model, iris_models["versions"][1])]).status_code == 200
        assert rest.wait_ready(name)["config"]["config_version"] == 3
    finally:
        rest.delete(name)


def test_failed_creation_reports_why(rest, broken_model):
    name = unique("broken")
    assert rest.create(name, [entity(broken_model["name"], broken_model["version"])]).status_code == 200
    try:
        doc = rest.wait_settled(name)
        assert doc["state"]["ready"] == "NOT_READY" and doc["state"]["config_update"] == "UPDATE_FAILED"
        state = doc["config"]["served_entities"][0]["state"]
        assert state["deployment"] == "DEPLOYMENT_FAILED" and "weights are corrupt" in state["deployment_state_message"]
        query = rest.query(name, {"dataframe_records": [{"x": 1}]})
        assert query.status_code == 400 and "not ready" in query.json()["message"]
    finally:
        rest.delete(name)


def test_backend_restart_keeps_every_endpoint(rest, iris_models, local_backend, backend_home):
    model, (v1, v2) = iris_models["name"], iris_models["versions"]
    serving, stopped = unique("keep"), unique("kept-stopped")
    assert rest.create(serving, [entity(model, v1), entity(model, v2)],
                       [{"served_model_name": f"iris-{v1}", "traffic_percentage": 30},
                        {"served_model_name": f"iris-{v2}", "traffic_percentage": 70}],
                       tags=[{"key": "owner", "value": "ml"}]).status_code == 200
    assert rest.create(stopped, [entity(model, v1)]).status_code == 200
    try:
        rest.wait_ready(serving)
        rest.wait_ready(stopped)
        rest.call("POST", f"/api/2.0/serving-endpoints/{stopped}/config:stop")
        rest.call("PATCH", f"/api/2.0/permissions/serving-endpoints/{rest.get(serving)['id']}",
                  json={"access_control_list": [{"user_name": "bob@example.com", "permission_level": "CAN_VIEW"}]})
        before = {n: rest.get(n) for n in (serving, stopped)}
        acl_before = rest.call("GET", f"/api/2.0/permissions/serving-endpoints/{before[serving]['id']}").json()

        assert localctl.stop(backend_home)
        info, started = localctl.start(backend_home, port=local_backend.port,
                                       extra_args=["--scale-to-zero-idle", "3"])
        assert started and info.url == local_backend.url

        after = rest.wait_ready(serving)
        for key in ("id", "creator", "creation_timestamp", "tags"):
            assert after[key] == before[serving][key]
        assert after["config"]["traffic_config"] == before[serving]["config"]["traffic_config"]
        assert after["config"]["config_version"] == before[serving]["config"]["config_version"]
        assert rest.call("GET", f"/api/2.0/permissions/serving-endpoints/{after['id']}").json() == acl_before
        body = {"dataframe_records": iris_models["X"].head(1).to_dict("records")}
        assert rest.query(serving, body).status_code == 200
        assert rest.get(stopped)["state"]["suspend"] == "SUSPENDED"
        assert rest.query(stopped, body).status_code == 400
    finally:
        rest.delete(serving)
        rest.delete(stopped)


def test_update_interrupted_by_a_restart_resumes(rest, iris_models, local_backend, backend_home):
    model, (v1, v2) = iris_models["name"], iris_models["versions"]
    name = unique("resume")
    assert rest.create(name, [entity(model, v1)]).status_code == 200
    try:
        rest.wait_ready(name)
        accepted = rest.update(name, [entity(model, v2)])
        assert accepted.status_code == 200 and accepted.json()["state"]["config_update"] == "IN_PROGRESS"
        assert localctl.stop(backend_home)  # while the new model server is still loading
        localctl.start(backend_home, port=local_backend.port, extra_args=["--scale-to-zero-idle", "3"])
        doc = rest.wait_ready(name)
        assert doc["config"]["config_version"] == 2
        assert [e["entity_version"] for e in doc["config"]["served_entities"]] == [v2]
        answer = rest.query(name, {"dataframe_records": iris_models["X"].head(1).to_dict("records")})
        assert answer.status_code == 200 and answer.headers["served-model-name"] == f"iris-{v2}"
    finally:
        rest.delete(name)
