"""The server extension behind the Model Serving panel: its REST handlers, run in a real Jupyter
server (pytest-jupyter's `jp_fetch`) against the session's real local backend.

Tests here are plain functions that drive pytest-jupyter's event loop themselves (its async-test
hooks are not registered suite-wide on purpose: its autouse fixtures would then run for every test).
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403 - jp_fetch, jp_serverapp and their fixtures

from jupyter_serving.client import localctl
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def jp_server_config(request):
    """The server extension enabled; `JupyterServing` settings from an indirect parameter."""
    panel = getattr(request, "param", None) or {}
    config = {"ServerApp": {"jpserver_extensions": {"jupyter_serving": True}}}
    if panel:
        config["JupyterServing"] = dict(panel)
    return config


@pytest.fixture
def fetch(jp_fetch, jp_asyncio_loop, local_backend):
    """Synchronous call to `/jupyter-serving/api/...`: returns (status, decoded JSON body)."""

    def call(*parts: str, method: str = "GET", params: dict | None = None, headers: dict | None = None):
        kwargs = {"method": method, "params": params, "raise_error": False, "request_timeout": 90}
        if method in ("POST", "PUT"):
            kwargs["body"] = b""
        if headers is not None:
            kwargs["headers"] = headers
        # a test before this one may have run (and closed) an asyncio loop of its own: use the server's
        asyncio.set_event_loop(jp_asyncio_loop)
        resp = jp_asyncio_loop.run_until_complete(jp_fetch("jupyter-serving", "api", *parts, **kwargs))
        body = resp.body or b""
        try:
            return resp.code, json.loads(body) if body else None
        except ValueError:
            return resp.code, body.decode(errors="replace")

    return call


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def ready_endpoint(rest, iris_models):
    """An iris endpoint (v1, Small, no scale to zero), READY."""
    name = unique("panel-iris")
    resp = rest.create(name, [entity(iris_models["name"], iris_models["versions"][0])])
    assert resp.status_code == 200, resp.text
    rest.wait_ready(name)
    yield name
    rest.delete(name)


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


# --------------------------------------------------------------------------------------------------
# Reading


def test_list_shows_state_entities_traffic_and_config(fetch, ready_endpoint, iris_models, local_backend):
    code, body = fetch("endpoints")
    assert code == 200, body
    assert body["is_local"] is True
    assert body["backend"] == f"the local backend at {local_backend.url}"
    ep = next(e for e in body["endpoints"] if e["name"] == ready_endpoint)
    assert ep["badge"] == "ready"
    assert ep["state"] == "Ready"
    assert ep["config_version"] == 1
    assert isinstance(ep["updated"], int) and ep["updated"] > 0
    assert ep["pending"] is None and ep["message"] == ""
    assert ep["permission_level"] == "CAN_MANAGE"
    assert ep["url"] == f"{local_backend.url.rstrip('/')}/serving-endpoints/{ready_endpoint}/invocations"
    [ent] = ep["entities"]
    assert ent["entity_name"] == iris_models["name"]
    assert ent["entity_version"] == iris_models["versions"][0]
    assert ent["model"] == f"{iris_models['name']} v{iris_models['versions'][0]}"
    assert ent["workload_size"] == "Small" and ent["workload_type"] == "CPU"
    assert ent["scale_to_zero"] is False
    assert ent["traffic"] == 100
    assert ent["deployment"] == "DEPLOYMENT_READY"
    names = [e["name"] for e in body["endpoints"]]
    assert names == sorted(names, key=str.lower)


def test_failed_creation_shows_update_failed_with_the_reason(fetch, rest, broken_model):
    name = unique("panel-broken")
    assert rest.create(name, [entity(broken_model["name"], broken_model["version"])]).status_code == 200
    try:
        code, body = fetch("endpoints", name)
        assert code == 200 and body["badge"] in ("updating", "update failed"), body
        if body["badge"] == "updating":  # the model server is still loading the model
            assert body["pending"]["entities"][0]["model"] == f"{broken_model['name']} v{broken_model['version']}"
        rest.wait_settled(name)
        code, body = fetch("endpoints", name)
        assert body["badge"] == "update failed" and body["state"] == "Not ready (Update failed)", body
        assert body["message"].startswith("served entity 'broken-1': ")
        assert "weights are corrupt" in body["message"]
        _one_line(body["message"])
    finally:
        rest.delete(name)


def test_get_one_endpoint_and_unknown_endpoint(fetch, ready_endpoint):
    code, body = fetch("endpoints", ready_endpoint)
    assert code == 200 and body["name"] == ready_endpoint and body["badge"] == "ready"
    code, body = fetch("endpoints", "no-such-endpoint")
    assert code == 404
    assert body["error"]["kind"] == "NotFoundError"
    assert "No serving endpoint named 'no-such-endpoint'" in body["error"]["message"]
    _one_line(body["error"]["message"])


def test_query_template_cell_runs_as_a_query(fetch, ready_endpoint, rest):
    code, body = fetch("endpoints", ready_endpoint, "query-template")
    assert code == 200, body
    head, _, rest_of_cell = body["cell"].partition("\n")
    assert head == f"%%query {ready_endpoint}"
    template = json.loads(rest_of_cell)
    assert template == body["template"]
    split = template["dataframe_split"]
    assert split["columns"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert split["data"] and len(split["data"][0]) == 4
    # The template is a valid request as it stands.
    resp = rest.query(ready_endpoint, template)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == len(split["data"])


# --------------------------------------------------------------------------------------------------
# Changing


def test_stop_then_start(fetch, rest, iris_models):
    name = unique("panel-stop")
    assert rest.create(name, [entity(iris_models["name"], iris_models["versions"][1])]).status_code == 200
    try:
        rest.wait_ready(name)
        code, body = fetch("endpoints", name, "stop", method="POST")
        assert code == 200, body
        assert body["name"] == name
        stopped = poll(lambda: (lambda r: r[1] if r[1]["badge"] == "stopped" else None)(fetch("endpoints", name)),
                       60, 0.2, "the endpoint to stop")
        assert stopped["state"] == "Not ready (Stopped)"
        # A stopped endpoint refuses queries.
        assert rest.query(name, {"dataframe_records": [{"sepal_length": 5.1}]}).status_code == 400

        code, body = fetch("endpoints", name, "start", method="POST")
        assert code == 200, body
        assert body["badge"] in ("updating", "not ready", "ready")
        poll(lambda: fetch("endpoints", name)[1]["badge"] == "ready", 120, 0.3, "the endpoint to start")
        code, body = fetch("endpoints", name)
        assert body["config_version"] == 2  # start deploys the same config as a new version
    finally:
        rest.delete(name)


def test_delete(fetch, rest, iris_models):
    name = unique("panel-del")
    assert rest.create(name, [entity(iris_models["name"], iris_models["versions"][0])]).status_code == 200
    code, body = fetch("endpoints", name)
    assert code == 200 and body["badge"] in ("updating", "not ready", "ready")
    code, body = fetch("endpoints", name, method="DELETE")
    assert (code, body) == (200, {"deleted": name})
    assert fetch("endpoints", name)[0] == 404
    code, body = fetch("endpoints", name, method="DELETE")
    assert code == 404 and body["error"]["kind"] == "NotFoundError"


def test_handlers_require_jupyter_auth(fetch):
    code, _ = fetch("endpoints", headers={"Authorization": ""})
    assert code == 403


def test_reconnect_reopens_the_connection(fetch, ready_endpoint):
    code, body = fetch("endpoints", params={"reconnect": "1"})
    assert code == 200 and any(e["name"] == ready_endpoint for e in body["endpoints"])


def test_connection_line_needs_no_network(fetch, local_backend):
    code, body = fetch("connection")
    assert code == 200
    assert local_backend.url in body["backend"]


# --------------------------------------------------------------------------------------------------
# Errors: one readable line each


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("jp_server_config", [{"host": f"http://127.0.0.1:{_closed_port()}"}], indirect=True)
def test_backend_down(fetch):
    code, body = fetch("endpoints")
    assert code == 502, body
    err = body["error"]
    assert err["kind"] == "ConnectionFailedError"
    assert "Cannot reach the Databricks workspace at http://127.0.0.1:" in err["message"]
    assert "connection refused" in err["message"]
    _one_line(err["message"])


def test_no_credentials(fetch, monkeypatch, tmp_path):
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "missing.cfg"))
    code, body = fetch("endpoints")
    assert code == 401, body
    err = body["error"]
    assert err["kind"] == "AuthenticationError"
    assert err["message"].startswith("No usable credentials for http://127.0.0.1:")
    _one_line(err["message"])


def test_forbidden(fetch, monkeypatch, rest, ready_endpoint):
    resp = rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens",
                     json={"application_id": "alice@example.com"})
    assert resp.status_code == 200, resp.text
    alice = resp.json()["token_value"]
    endpoint_id = rest.get(ready_endpoint)["id"]
    resp = rest.call("PATCH", f"/api/2.0/permissions/serving-endpoints/{endpoint_id}",
                     json={"access_control_list": [{"user_name": "alice@example.com",
                                                    "permission_level": "CAN_QUERY"}]})
    assert resp.status_code == 200, resp.text

    monkeypatch.setenv("DATABRICKS_TOKEN", alice)
    code, body = fetch("endpoints")
    assert code == 200, body
    [ep] = [e for e in body["endpoints"] if e["name"] == ready_endpoint]
    assert ep["permission_level"] == "CAN_QUERY"  # the panel disables stop/start/delete
    code, body = fetch("endpoints", ready_endpoint, "stop", method="POST")
    assert code == 403, body
    assert body["error"]["kind"] == "AccessDeniedError"
    assert "alice@example.com does not have CAN_MANAGE permission" in body["error"]["message"]
    _one_line(body["error"]["message"])

    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-not-a-token")
    code, body = fetch("endpoints", params={"reconnect": "1"})
    assert code == 403 and body["error"]["kind"] == "AccessDeniedError"
    assert "Invalid access token" in body["error"]["message"]
    assert rest.get(ready_endpoint)["state"]["suspend"] == "NOT_SUSPENDED"


# --------------------------------------------------------------------------------------------------
# Connection resolution: the same as the magics'


def test_without_configured_workspace_uses_the_local_backend(fetch, monkeypatch, local_backend, ready_endpoint):
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    code, body = fetch("endpoints")
    assert code == 200, body
    assert body["backend"] == f"the local backend at {local_backend.url}"
    assert any(e["name"] == ready_endpoint for e in body["endpoints"])


@pytest.fixture
def private_home(tmp_path):
    home = tmp_path / "jshome"
    yield home
    localctl.stop(home)


@pytest.mark.parametrize("jp_server_config", [{"retry_timeout_seconds": 1}], indirect=True)
def test_local_backend_started_on_demand_and_only_restarted_on_retry(fetch, private_home, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("JUPYTER_SERVING_HOME", str(private_home))
    assert localctl.status(private_home) is None

    code, body = fetch("endpoints")
    assert code == 200, body
    assert body == {"backend": body["backend"], "is_local": True, "endpoints": []}
    info = localctl.status(private_home)
    assert info is not None and body["backend"] == f"the local backend at {info.url}"

    localctl.stop(private_home)
    code, body = fetch("endpoints")  # a poll reports it down ...
    assert code == 502 and body["error"]["kind"] == "ConnectionFailedError", body
    code, body = fetch("endpoints")  # ... and does not restart it
    assert code == 502 and "The local backend is not running" in body["error"]["message"], body
    assert "Retry" in body["error"]["message"]
    assert localctl.status(private_home) is None

    # Retry resolves the connection again, which starts the local backend (as on first use); a
    # start that fails is one line too.
    calls = []

    def failing_start(data_dir=None, cloud=None):
        calls.append(data_dir)
        raise localctl.LocalBackendError("port 1 is taken (a simulated failure)")

    monkeypatch.setattr(localctl, "ensure_running", failing_start)
    code, body = fetch("endpoints", params={"reconnect": "1"})
    assert calls, "retry did not try to start the local backend"
    assert code == 502 and body["error"]["kind"] == "ConnectionFailedError", body
    assert body["error"]["message"].startswith("The local backend could not start: port 1 is taken")
    _one_line(body["error"]["message"])


def test_query_cell_keeps_rows_on_one_line():
    from jupyter_serving.serverext import compact_json, query_cell

    template = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]] * 30}, "params": {"k": 1}}
    cell = query_cell("iris", template)
    head, body = cell.split("\n", 1)
    assert head == "%%query iris" and json.loads(body) == template
    assert '    "columns": ["a", "b"],' in body.splitlines()
    assert body.splitlines().count("      [1.0, 2.0],") == 29
    long = {"inputs": [float(i) for i in range(300)], "s": ["x" * 100]}
    text = compact_json(long)
    assert json.loads(text) == long
    assert max(len(line) for line in text.splitlines()) <= 88 or "x" * 100 in text
    assert len(text.splitlines()) < 40


# --------------------------------------------------------------------------------------------------
# Packaging


def test_import_stays_light_and_exposes_extension_points():
    code = ("import sys, jupyter_serving as j; "
            "assert j._jupyter_server_extension_points() == [{'module': 'jupyter_serving'}]; "
            "assert j._jupyter_labextension_paths() == [{'src': 'labextension', 'dest': 'jupyter-serving'}]; "
            "heavy = [m for m in ('tornado', 'jupyter_server', 'databricks', 'pandas', 'jupyter_serving.serverext') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["name"] == "jupyter-serving"
    assert package["jupyterlab"]["outputDir"] == "../jupyter_serving/labextension"


def test_pip_install_enables_both_extensions():
    """`pip install .` (or -e .) installs the built labextension and enables the server extension."""
    import re

    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    procs = [subprocess.Popen([sys.executable, "-m", "jupyter", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
             for args in (("labextension", "list"), ("server", "extension", "list"))]
    labext, serverext = (re.sub(r"\x1b\[[0-9;]*m", "", p.communicate(timeout=120)[0]) for p in procs)
    assert re.search(r"jupyter-serving v\S+ enabled\s+OK \(python, jupyter-serving\)", labext), labext
    assert re.search(r"jupyter_serving enabled", serverext), serverext
    assert re.search(r"jupyter_serving \S+ OK", serverext), serverext
