"""State that cannot lie: deletion is final, failed writes change nothing, a bad row does not stop the
backend, a recreated endpoint starts with empty logs, and callers without permission learn nothing.

These tests run a private backend in their own data dir (its state.db on a small tmpfs when this
machine allows mounting one, so that a full disk can be simulated), restarted by the tests that need
a restart, and stopped at the end.
"""
from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from jupyter_serving import cli
from jupyter_serving.client import localctl
from jupyter_serving.datadir import Paths
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique

pytestmark = pytest.mark.backend

EXTRA_ARGS = ["--scale-to-zero-idle", "600"]
BROKEN_TEXT = "weights are corrupt"


@dataclass
class Private:
    home: Path
    tmpfs: Path | None  # where state.db lives, if a tmpfs could be mounted
    info: localctl.BackendInfo
    rest: Rest
    models: dict[str, tuple[str, str]]

    def restart(self) -> None:
        assert localctl.stop(self.home)
        info, started = localctl.start(self.home, port=self.info.port, extra_args=EXTRA_ARGS)
        assert started and info.url == self.info.url

    def user(self, name: str) -> Rest:
        resp = self.rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens", json={"application_id": name})
        assert resp.status_code == 200, resp.text
        return Rest(self.info.url, resp.json()["token_value"])


def _register(home: Path, models: dict) -> dict[str, tuple[str, str]]:
    """Register `models` ({name: python_model}) in the private backend's registry."""
    import cloudpickle
    import mlflow

    import tests.models

    cloudpickle.register_pickle_by_value(tests.models)
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(Paths(home).mlflow_uri)
    mlflow.set_registry_uri(Paths(home).mlflow_uri)
    try:
        out = {}
        for key, model in models.items():
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["mlflow"])
            out[key] = (f"main.state.{key}", str(mlflow.register_model(info.model_uri, f"main.state.{key}").version))
        return out
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    from tests.models import BrokenModel, SleepModel, SlowLoadModel

    home = tmp_path_factory.mktemp("statehome")
    tmpfs = tmp_path_factory.mktemp("statefs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(tmpfs)],
                             capture_output=True).returncode == 0
    if mounted:
        (home / "state.db").symlink_to(tmpfs / "state.db")
    info, _ = localctl.start(home, extra_args=EXTRA_ARGS)
    try:
        models = _register(home, {"good": SleepModel(), "broken": BrokenModel(), "slow": SlowLoadModel()})
        yield Private(home, tmpfs if mounted else None, info, Rest(info.url, info.token), models)
    finally:
        localctl.stop(home)
        if mounted:
            subprocess.run(["umount", "-l", str(tmpfs)], check=False)  # lazy: a dying backend may hold it


def _model(private: Private, key: str, **fields) -> dict:
    name, version = private.models[key]
    return entity(name, version, **fields)


def _servers_of(private: Private, endpoint_name: str, endpoint_id: str) -> list[int]:
    """Pids of the model servers writing their log under the endpoint's log dir (by name or by id)."""
    logs = Paths(private.home).logs
    dirs = (str(logs / endpoint_name) + "/", str(logs / endpoint_id) + "/")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            target = os.readlink(f"/proc/{entry}/fd/1")
        except OSError:
            continue
        if b"scoring_worker" in cmdline and target.startswith(dirs):
            pids.append(int(entry))
    return pids


def _names(rest: Rest) -> set[str]:
    return {e["name"] for e in rest.call("GET", "/api/2.0/serving-endpoints").json()["endpoints"]}


# 1. deletion is authoritative --------------------------------------------------------------------
def test_delete_while_deploying_stays_deleted_after_restart(private):
    rest, name = private.rest, unique("del-deploying")
    created = rest.create(name, [_model(private, "slow")])
    assert created.status_code == 200, created.text
    endpoint_id = created.json()["id"]
    try:
        poll(lambda: _servers_of(private, name, endpoint_id), 60, 0.1, "the slow model server to start")
        assert rest.get(name)["state"]["config_update"] == "IN_PROGRESS"
        assert rest.call("DELETE", f"/api/2.0/serving-endpoints/{name}").status_code == 200
        poll(lambda: not _servers_of(private, name, endpoint_id), 30, 0.1, "its model server to stop")
        private.restart()
        assert rest.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 404
        assert name not in _names(rest)
        assert _servers_of(private, name, endpoint_id) == []
    finally:
        rest.delete(name)


# 2. writes never block the event loop; a failed write changes nothing -------------------------------
def _assert_unavailable(resp) -> None:
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["error_code"] == "TEMPORARILY_UNAVAILABLE" and body["details"] == [] and body["message"]


def test_locked_database_answers_503_while_queries_flow(private):
    rest, name, other = private.rest, unique("locked"), unique("locked-new")
    assert rest.create(name, [_model(private, "good")], tags=[{"key": "team", "value": "a"}]).status_code == 200
    try:
        rest.wait_ready(name)
        body = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": 0}}
        assert rest.query(name, body).status_code == 200
        before = rest.get(name)
        lock = sqlite3.connect(private.home / "state.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            answers: list = []
            writer = threading.Thread(target=lambda: answers.append(rest.call(
                "PATCH", f"/api/2.0/serving-endpoints/{name}/tags", json={"add_tags": [{"key": "team", "value": "b"}]})))
            writer.start()
            during = 0
            while writer.is_alive():  # queries answer while the write waits for the lock
                assert rest.query(name, body).status_code == 200
                during += writer.is_alive()
            writer.join()
            _assert_unavailable(answers[0])
            assert during >= 3, f"only {during} queries answered while a write waited for the lock"
            _assert_unavailable(rest.create(other, [_model(private, "good")]))
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        after = rest.get(name)
        assert after["tags"] == before["tags"] == [{"key": "team", "value": "a"}]
        assert after["last_updated_timestamp"] == before["last_updated_timestamp"]
        assert rest.call("GET", f"/api/2.0/serving-endpoints/{other}").status_code == 404
        retry = rest.call("PATCH", f"/api/2.0/serving-endpoints/{name}/tags",
                          json={"add_tags": [{"key": "team", "value": "b"}]})
        assert retry.status_code == 200 and rest.get(name)["tags"] == [{"key": "team", "value": "b"}]
        assert rest.create(other, [_model(private, "good")]).status_code == 200
    finally:
        rest.delete(name)
        rest.delete(other)


def test_full_disk_answers_503_and_changes_nothing(private):
    if private.tmpfs is None:
        pytest.skip("cannot mount a tmpfs here to fill up")
    rest, name = private.rest, unique("diskfull")
    assert rest.create(name, [_model(private, "good")]).status_code == 200
    filler = private.tmpfs / "filler"
    try:
        before = rest.get(name)
        with contextlib.suppress(OSError), open(filler, "wb") as f:  # full already counts too
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        big = [{"key": f"k{i}", "value": "v" * 250} for i in range(40)]
        _assert_unavailable(rest.call("PATCH", f"/api/2.0/serving-endpoints/{name}/tags", json={"add_tags": big}))
        after = rest.get(name)
        assert after["tags"] == before["tags"] and after["last_updated_timestamp"] == before["last_updated_timestamp"]
        filler.unlink()
        retry = rest.call("PATCH", f"/api/2.0/serving-endpoints/{name}/tags", json={"add_tags": big})
        assert retry.status_code == 200 and len(rest.get(name)["tags"]) == 40
    finally:
        filler.unlink(missing_ok=True)
        rest.delete(name)


# 3. one malformed row does not stop the backend ------------------------------------------------------
def test_malformed_row_is_skipped_and_reported(private):
    rest, bad, good = private.rest, unique("badrow"), unique("goodrow")
    for name in (bad, good):
        assert rest.create(name, [_model(private, "good")]).status_code == 200
    try:
        rest.wait_ready(good)
        rest.wait_ready(bad)
        assert localctl.stop(private.home)
        with sqlite3.connect(private.home / "state.db") as db:
            table = "endpoint_rows" if db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'endpoint_rows'").fetchone() else "endpoints"
            assert db.execute(f"UPDATE {table} SET doc = '{{not json' WHERE name = ?", (bad,)).rowcount == 1
        info, started = localctl.start(private.home, port=private.info.port, extra_args=EXTRA_ARGS)
        assert started
        rest.wait_ready(good)
        assert rest.query(good, {"dataframe_records": [{"x": 1.0}]}).status_code == 200
        assert rest.call("GET", f"/api/2.0/serving-endpoints/{bad}").status_code == 404
        assert rest.call("GET", "/api/2.0/jupyter-serving/backend").json()["unreadable_endpoint_rows"] == 1
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["local", "status", "--data-dir", str(private.home)]) == 0
        assert "1 endpoint row could not be read: see" in out.getvalue() and "backend.log" in out.getvalue()
        assert bad in (Paths(private.home).logs / "backend.log").read_text()
    finally:
        rest.delete(good)
        with sqlite3.connect(private.home / "state.db", timeout=10) as db:
            db.execute("DELETE FROM endpoint_rows WHERE name = ?", (bad,))


# 4. a recreated endpoint starts with empty logs ------------------------------------------------------
def test_recreated_endpoint_starts_with_empty_logs(private):
    rest, name = private.rest, unique("recreate")
    logs = f"/api/2.0/serving-endpoints/{name}/served-models/model"
    assert rest.create(name, [_model(private, "broken", name="model")]).status_code == 200
    try:
        assert rest.wait_settled(name)["state"]["config_update"] == "UPDATE_FAILED"
        assert BROKEN_TEXT in rest.call("GET", logs + "/build-logs").json()["logs"]
        assert BROKEN_TEXT in rest.call("GET", logs + "/logs").json()["logs"]
        assert rest.call("DELETE", f"/api/2.0/serving-endpoints/{name}").status_code == 200
        assert rest.create(name, [_model(private, "good", name="model")]).status_code == 200
        rest.wait_ready(name)
        for kind in ("build-logs", "logs"):
            text = rest.call("GET", f"{logs}/{kind}").json()["logs"]
            assert text and BROKEN_TEXT not in text, (kind, text)
    finally:
        rest.delete(name)


# 5. callers without permission learn nothing ---------------------------------------------------------
def test_caller_without_permission_learns_nothing(private):
    rest, name = private.rest, unique("secret")
    assert rest.create(name, [_model(private, "good")], tags=[{"key": "project", "value": "zeppelin"}]
                       ).status_code == 200
    try:
        doc = rest.get(name)
        bob = private.user(unique("bob") + "@example.com")
        base = f"/api/2.0/serving-endpoints/{name}"
        calls = [("GET", base, None), ("PUT", base + "/config", {"served_entities": [_model(private, "good")]}),
                 ("DELETE", base, None), ("GET", base + "/served-models/any/logs", None),
                 ("GET", base + "/served-models/any/build-logs", None),
                 ("GET", base + "/metrics", None), ("PATCH", base + "/tags", {"add_tags": [{"key": "a"}]}),
                 ("GET", f"/api/2.0/permissions/serving-endpoints/{doc['id']}", None),
                 ("POST", f"/serving-endpoints/{name}/invocations", {"dataframe_records": [{"x": 1.0}]})]
        secrets = (doc["creator"], "zeppelin", private.models["good"][0])
        for method, path, body in calls:
            resp = bob.call(method, path, json=body)
            assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
            answer = resp.json()
            assert answer["error_code"] == "PERMISSION_DENIED", (method, path, answer)
            assert not any(s in resp.text for s in secrets), (method, path, resp.text)
        by_id = bob.call("GET", f"/api/2.0/permissions/serving-endpoints/{doc['id']}")
        assert name not in by_id.text
        assert name not in _names(bob)
        taken = bob.create(name, [_model(private, "good")])
        assert taken.status_code == 409
        assert taken.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        assert taken.json()["message"] == f"Endpoint with name '{name}' already exists."
        assert not any(s in taken.text for s in (*secrets, doc["id"]))
        missing = bob.call("GET", f"/api/2.0/serving-endpoints/{unique('missing')}")
        assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert rest.get(name)["id"] == doc["id"]  # bob's DELETE did nothing
    finally:
        rest.delete(name)

