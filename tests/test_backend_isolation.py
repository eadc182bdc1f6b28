"""Nothing reaches a model except through the gateway, and every query error is a JSON answer.

Model servers listen on private Unix sockets (no TCP port), start without the backend's secrets,
and lose nothing but a slot's worth of work when a client gives up; hostile queries get 4xx JSON
errors in Databricks' shape and leave the keep-alive connection open.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlparse

import mlflow.pyfunc
import pytest
import requests

from jupyter_serving.client import localctl
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique

SECRETS = {"DATABRICKS_TOKEN": "dapi-leak-1", "DATABRICKS_HOST": "https://leak.example.com",
           "DATABRICKS_CLIENT_SECRET": "leak-2", "DATABRICKS_CLIENT_ID": "leak-id", "MY_API_TOKEN": "leak-3",
           "SOME_SECRET": "leak-4", "DB_PASSWORD": "leak-5", "OPENAI_API_KEY": "leak-6",
           "MLFLOW_TRACKING_TOKEN": "leak-7"}


class HostileModel(mlflow.pyfunc.PythonModel):
    """`params.mode`: "ok" (doubles `x` after `sleep_ms`), "raise" (fails), "object" (unencodable output)."""

    def predict(self, context, model_input, params=None):
        import time as _time

        params = params or {}
        _time.sleep(float(params.get("sleep_ms", 0.0)) / 1000.0)
        if params.get("mode") == "raise":
            raise ValueError("hostile model refuses this input\non purpose")
        if params.get("mode") == "object":
            return [object()]
        return model_input[["x"]].astype(float) * 2


def _register(name: str) -> str:
    import cloudpickle
    import mlflow
    import pandas as pd

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=HostileModel(),
                                       input_example=(example, {"sleep_ms": 0.0, "mode": "ok"}))
    return str(mlflow.register_model(info.model_uri, name).version)


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def hostile(rest, local_backend):
    """An endpoint serving HostileModel with concurrency 4; yields (endpoint, served entity)."""
    model = "main.ml.hostile"
    version = _register(model)
    name = unique("hostile")
    resp = rest.create(name, [entity(model, version)])
    assert resp.status_code == 200, resp.text
    rest.wait_ready(name)
    yield name, f"hostile-{version}"
    rest.delete(name)


# --- helpers reading /proc ------------------------------------------------------------------------

def _model_server_pids(backend_pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = next(int(line.split()[1]) for line in (entry / "status").read_text().splitlines()
                        if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if b"jupyter_serving.local.scoring_worker" in cmdline and ppid == backend_pid:
            pids.append(int(entry.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_listeners(pid: int) -> list[str]:
    inodes = _socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(f"{table} {fields[1]}")
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


# --- 1. private sockets ---------------------------------------------------------------------------

def test_model_servers_listen_on_private_unix_sockets_only(rest, hostile, local_backend, backend_home):
    name, served = hostile
    # the backend's pid now: another test may have restarted it since the session began
    pids = _model_server_pids(localctl.status(backend_home).pid)
    assert pids, "no model server found"
    for pid in pids:
        assert _tcp_listeners(pid) == [], f"model server {pid} listens on TCP"
    sockets_dir = backend_home / "sockets"
    assert stat.S_IMODE(sockets_dir.stat().st_mode) == 0o700
    socket_files = list(sockets_dir.iterdir())
    assert socket_files
    for path in socket_files:
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600, path
    logs = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/{served}/logs").json()["logs"]
    config_version = rest.get(name)["config"]["config_version"]
    build = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/{served}/build-logs",
                      params={"config_version": config_version}).json()["logs"]
    assert "Model loaded" in logs and "Started MLflow scoring server" in build
    for text in (logs, build):
        assert str(sockets_dir) not in text and ".sock" not in text and "127.0.0.1:" not in text


# --- 2. no inherited secrets ----------------------------------------------------------------------

def test_model_servers_do_not_inherit_backend_secrets(tmp_path, monkeypatch, local_backend):
    import mlflow

    home = tmp_path / "h"
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    info, _ = localctl.start(home)
    try:
        for key in SECRETS:
            monkeypatch.delenv(key)
        private = Rest(info.url, info.token)
        mlflow.set_tracking_uri(info.env()["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(info.env()["MLFLOW_REGISTRY_URI"])
        try:
            version = _register("main.ml.envcheck")
        finally:
            mlflow.set_tracking_uri(local_backend.env()["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(local_backend.env()["MLFLOW_REGISTRY_URI"])
        resp = private.create("envcheck", [entity("main.ml.envcheck", version,
                                                  environment_vars={"OWN_SETTING": "mine"})])
        assert resp.status_code == 200, resp.text
        private.wait_ready("envcheck", timeout=180)
        assert SECRETS["DATABRICKS_CLIENT_SECRET"] in _environ(info.pid).values()  # the backend has them
        (pid,) = _model_server_pids(info.pid)
        env = _environ(pid)
        leaked = {k for k, v in env.items() if k in SECRETS or v in SECRETS.values()
                  or k.endswith(("_TOKEN", "_SECRET", "_PASSWORD", "_KEY"))}
        assert not leaked, leaked
        assert env["OWN_SETTING"] == "mine" and "PATH" in env
    finally:
        localctl.stop(home)


# --- 3. a client that gives up frees its slot -----------------------------------------------------

def test_disconnected_clients_release_their_concurrency_slots(rest, hostile, local_backend):
    name, _ = hostile
    url = f"{local_backend.url}/serving-endpoints/{name}/invocations"
    headers = {"Authorization": f"Bearer {local_backend.token}"}

    def query(sleep_ms: float, timeout: float):
        body = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": sleep_ms, "mode": "ok"}}
        try:
            return requests.post(url, json=body, headers=headers, timeout=timeout).status_code
        except requests.exceptions.Timeout:
            return "timeout"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: query(5000, 0.3), range(4))) == ["timeout"] * 4
        started = time.monotonic()
        assert list(pool.map(lambda _: query(10, 30), range(4))) == [200] * 4
    assert time.monotonic() - started < 3.0


# --- 4. hostile queries ---------------------------------------------------------------------------

def _ok_body(**params) -> bytes:
    return json.dumps({"dataframe_records": [{"x": 1.0}], "params": {"mode": "ok", **params}}).encode()


def _hostile_cases(name: str, served: str, token: str) -> list[tuple]:
    """(what, path, headers, body, expected status or None for any 4xx)."""
    path = f"/serving-endpoints/{name}/invocations"
    auth = {"Authorization": f"Bearer {token}"}
    as_json = {**auth, "Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    return [
        ("model raises", path, as_json, _ok_body(mode="raise"), 400),
        ("text/plain body", path, {**auth, "Content-Type": "text/plain"}, _ok_body(), 415),
        ("xml body", path, {**auth, "Content-Type": "application/xml"}, b"<x/>", 415),
        ("latin-1 charset", path, {**auth, "Content-Type": "application/json; charset=latin-1"}, _ok_body(), 415),
        ("odd content-type parameter", path, {**auth, "Content-Type": "application/json; foo=bar"}, _ok_body(), 415),
        ("body over 16 MB", path, as_json, b" " * (16 * 1024 * 1024 + 1), 413),
        ("100k-deep array", path, as_json, deep, 400),
        ("100k-deep object", path, as_json, deep_object, 400),
        ("deep array inside dataframe_records", path, as_json,
         b'{"dataframe_records": ' + deep + b"}", 400),
        ("truncated JSON", path, as_json, b'{"dataframe_records": [', 400),
        ("empty body", path, as_json, b"", 400),
        ("JSON array at top level", path, as_json, b"[1, 2, 3]", 400),
        ("JSON string at top level", path, as_json, b'"hello"', 400),
        ("unknown input key", path, as_json, b'{"rows": [{"x": 1}]}', 400),
        ("missing column", path, as_json, b'{"dataframe_records": [{"y": 1}]}', 400),
        ("invalid UTF-8", path, as_json, b'{"dataframe_records": [{"x": "\xff\xfe"}]}', 400),
        ("params of the wrong type", path, as_json,
         b'{"dataframe_records": [{"x": 1}], "params": {"sleep_ms": "soon"}}', 400),
        ("garbage CSV", path, {**auth, "Content-Type": "text/csv"}, b'\x00\x01\x02"\n"', 400),
        ("no token", path, {"Content-Type": "application/json"}, _ok_body(), 401),
        ("wrong token", path, {**as_json, "Authorization": "Bearer nope"}, _ok_body(), 403),
        ("unknown endpoint", "/serving-endpoints/no-such-endpoint/invocations", as_json, _ok_body(), 404),
        ("unknown served entity", f"/serving-endpoints/{name}/served-models/nobody/invocations", as_json,
         _ok_body(), 404),
    ]


def _exchange(conn: http.client.HTTPConnection, path: str, headers: dict, body: bytes):
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp, resp.read()


def _assert_error_shape(status: int, raw: bytes, content_type: str) -> dict:
    assert content_type.startswith("application/json"), (status, content_type, raw[:200])
    doc = json.loads(raw)
    assert set(doc) == {"error_code", "message", "details"}, doc
    assert isinstance(doc["error_code"], str) and doc["error_code"]
    assert isinstance(doc["message"], str) and doc["message"] and "\n" not in doc["message"]
    assert doc["details"] == [] and "Traceback" not in doc["message"]
    return doc


def test_hostile_queries_get_json_errors_on_a_live_keepalive_connection(hostile, local_backend):
    name, served = hostile
    parsed = urlparse(local_backend.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    good_headers = {"Authorization": f"Bearer {local_backend.token}", "Content-Type": "application/json"}
    resp, _ = _exchange(conn, f"/serving-endpoints/{name}/invocations", good_headers, _ok_body())
    assert resp.status == 200
    sock = conn.sock
    failures = []
    for what, path, headers, body, expected in _hostile_cases(name, served, local_backend.token):
        resp, raw = _exchange(conn, path, headers, body)
        try:
            assert 400 <= resp.status < 500 and (expected is None or resp.status == expected), resp.status
            doc = _assert_error_shape(resp.status, raw, resp.getheader("Content-Type", ""))
            if what == "model raises":
                assert doc["error_code"] == "BAD_REQUEST" and "hostile model refuses this input" in doc["message"]
            if what == "unknown endpoint":
                assert doc == {"error_code": "RESOURCE_DOES_NOT_EXIST", "details": [],
                               "message": "Endpoint with name 'no-such-endpoint' does not exist."}
            follow, _ = _exchange(conn, f"/serving-endpoints/{name}/invocations", good_headers, _ok_body())
            assert follow.status == 200 and conn.sock is sock, "the keep-alive connection was closed"
        except (AssertionError, ValueError) as exc:
            failures.append(f"{what}: {exc!r} {resp.status} {raw[:300]!r}")
            conn.close()
            conn.connect()
            sock = conn.sock
    conn.close()
    assert not failures, "\n".join(failures)


def test_model_errors_keep_their_trace_in_the_server_log_only(rest, hostile, local_backend):
    name, served = hostile
    resp = rest.call("POST", f"/serving-endpoints/{name}/invocations", data=_ok_body(mode="raise"),
                     headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "stack_trace" not in resp.json()
    def traced():
        text = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/{served}/logs").json()["logs"]
        return text if "Traceback" in text else None

    logs = poll(traced, 10, 0.2, "the stack trace in the server log")
    assert "hostile model refuses this input" in logs


def test_unencodable_model_output_is_a_json_error(hostile, local_backend):
    name, _ = hostile
    parsed = urlparse(local_backend.url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = {"Authorization": f"Bearer {local_backend.token}", "Content-Type": "application/json"}
    resp, raw = _exchange(conn, f"/serving-endpoints/{name}/invocations", headers, _ok_body(mode="object"))
    assert resp.status == 500, raw
    doc = _assert_error_shape(resp.status, raw, resp.getheader("Content-Type", ""))
    assert doc["error_code"] == "INTERNAL_ERROR" and "JSON" in doc["message"]
    sock = conn.sock
    follow, _ = _exchange(conn, f"/serving-endpoints/{name}/invocations", headers, _ok_body())
    assert follow.status == 200 and conn.sock is sock
    conn.close()


# --- 5. stop a backend some other process started --------------------------------------------------

def test_stop_is_quick_when_another_process_started_the_backend(tmp_path):
    home = tmp_path / "k"
    kernel = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from jupyter_serving.client import localctl
        localctl.start({str(home)!r})
        print("started", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout.readline().strip() == "started"
        assert localctl.status(home) is not None
        began = time.monotonic()
        assert localctl.stop(home) is True
        assert time.monotonic() - began <= 2.0
        assert localctl.status(home) is None
    finally:
        kernel.kill()
        kernel.wait()
