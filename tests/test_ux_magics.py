"""What a first-time user tripped on (the UX round): each test reproduces one item, then checks the fix.

Pure checks first (no backend), then the magics against the real local backend.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pandas as pd
import pytest

from jupyter_serving.core.status import EndpointStatus
from tests.conftest import unique
from tests.magic_helpers import ok, one_line_error, run, shell

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _entity(name, version, deployment="DEPLOYMENT_READY", size="Small"):
    return {"name": name, "entity_name": "main.ml.iris", "entity_version": version, "workload_size": size,
            "workload_type": "CPU", "scale_to_zero_enabled": False, "state": {"deployment": deployment}}


def _doc(ready="READY", update="NOT_UPDATING", suspend="NOT_SUSPENDED", entities=None, routes=None):
    entities = entities or [_entity("iris-1", "1")]
    routes = routes or {e["name"]: 100 // len(entities) for e in entities}
    return {"name": "iris", "state": {"ready": ready, "config_update": update, "suspend": suspend},
            "config": {"config_version": 1, "served_entities": entities, "traffic_config": {"routes": [
                {"served_model_name": k, "traffic_percentage": v} for k, v in routes.items()]}},
            "last_updated_timestamp": int(time.time() * 1000) - 180_000}


def _clean_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    env["JUPYTER_SERVING_HOME"] = str(tmp_path / "home")
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "none.cfg")
    env.update(extra)
    return env


LOAD_EXT = ("import os, sys, time\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "t = time.process_time()\n"  # CPU time: the shared test machine's load does not count
            "ip.run_line_magic('load_ext', 'jupyter_serving')\n"
            "print('TOOK', time.process_time() - t)\n"
            "print('MLFLOW', 'mlflow' in sys.modules)\n"
            "print('TRACKING', os.environ.get('MLFLOW_TRACKING_URI'))\n"
            "print('REGISTRY', os.environ.get('MLFLOW_REGISTRY_URI'))\n")


def _load_ext(env: dict, cwd) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", LOAD_EXT], capture_output=True, text=True, env=env, timeout=60,
                          cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    out["banner"] = proc.stdout.splitlines()[0]
    return out


# ----------------------------------------------------------------------------------- 1. the registry trap

def test_load_ext_points_mlflow_at_the_backend_registry_without_importing_it(tmp_path):
    home = tmp_path / "home"
    out = _load_ext(_clean_env(tmp_path), tmp_path)
    assert out["TRACKING"] == out["REGISTRY"] == f"sqlite:///{home.resolve()}/mlflow.db"
    assert out["MLFLOW"] == "False" and float(out["TOOK"]) < 0.1
    assert not home.exists()  # nothing started, nothing written


def test_load_ext_keeps_the_users_mlflow_uri(tmp_path):
    out = _load_ext(_clean_env(tmp_path, MLFLOW_TRACKING_URI="sqlite:///mine.db"), tmp_path)
    assert out["TRACKING"] == "sqlite:///mine.db"
    assert out["REGISTRY"].endswith("/home/mlflow.db")


def test_load_ext_shows_no_temp_dir_but_a_tilde_path(tmp_path):
    out = _load_ext(_clean_env(tmp_path), tmp_path)
    assert "/tmp" not in out["banner"] and "data in" not in out["banner"], out["banner"]
    assert "started on first use; no Databricks workspace configured" in out["banner"]
    from pathlib import Path

    from jupyter_serving.client.connection import Target

    home = Path.home() / ".jupyter-serving"
    assert "data in ~/.jupyter-serving;" in Target("local", "x", data_dir=str(home)).describe()


def _fake_registry(path, model, version, location):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE model_versions (name TEXT, version INTEGER, source TEXT, storage_location TEXT)")
    db.execute("INSERT INTO model_versions VALUES (?, ?, ?, ?)", (model, version, "models:/m-1", location))
    db.commit()
    db.close()


def test_a_model_in_another_registry_is_named_with_the_fix(tmp_path, monkeypatch):
    from jupyter_serving.client.registries import registered_elsewhere

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _fake_registry(tmp_path / "mlflow.db", "main.ux.iris", 1, "/nb/mlruns/0/models/m-1/artifacts")
    backend = "sqlite:////somewhere/else/mlflow.db"
    err = registered_elsewhere("main.ux.iris", "1", backend)
    text = err.one_line("magic")
    assert "version 1 is registered in ./mlflow.db" in text
    assert (f"mlflow.set_registry_uri('{backend}'); mlflow.register_model('/nb/mlruns/0/models/m-1/artifacts', "
            "'main.ux.iris')") in text
    assert registered_elsewhere("main.ux.iris", "2", backend) is None
    assert registered_elsewhere("main.ux.other", None, backend) is None


# ------------------------------------------------------------------------------ 4. one vocabulary

def test_status_text_and_html_use_the_serving_words():
    st = EndpointStatus(_doc(update="IN_PROGRESS", entities=[_entity("iris-1", "1"),
                                                             _entity("iris-2", "2", "DEPLOYMENT_CREATING")],
                             routes={"iris-1": 100, "iris-2": 0}))
    text, page, line = repr(st), st._repr_html_(), st.progress_line(3)
    for shown in (text, page, line):
        assert "DEPLOYMENT_" not in shown and "NOT_UPDATING" not in shown and "IN_PROGRESS" not in shown
    assert "Ready (Updating)" in text and "· Ready ·" in text and "· Creating ·" in text
    assert "4 concurrent" in text and "4-4" not in text and "4–4" not in text
    assert line == "iris: Ready (Updating) · iris-1 ready, iris-2 creating · 3 s"
    assert list(st.entities_frame()["deployment"]) == ["Ready", "Creating"]
    assert EndpointStatus(_doc(suspend="SUSPENDED", ready="NOT_READY")).state == "Not ready (Stopped)"
    assert EndpointStatus(_doc(update="UPDATE_FAILED")).state == "Ready (Update failed)"


def test_list_view_has_words_human_times_no_index_and_an_empty_state():
    from jupyter_serving.client.endpoints import LIST_COLUMNS, _list_row
    from jupyter_serving.core.listing import EMPTY, EndpointsFrame

    frame = EndpointsFrame(pd.DataFrame([_list_row(_doc(update="IN_PROGRESS"))], columns=LIST_COLUMNS))
    assert frame.loc[0, "state"] == "Ready (Updating)" and "update_state" not in frame.columns
    shown = repr(frame)
    assert shown.splitlines()[1].startswith("iris ") and "3 min ago" in shown and "\n0 " not in shown
    assert "NOT_UPDATING" not in shown and "<th>0</th>" not in frame._repr_html_()
    empty = EndpointsFrame(pd.DataFrame(columns=LIST_COLUMNS))
    assert repr(empty) == EMPTY and "%serve create NAME --model M --version V" in empty._repr_html_()
    assert EMPTY.startswith("No serving endpoints yet")


def test_watch_panel_words_say_how_long_it_watched():
    from jupyter_serving.widgets.status_panel import render_status

    page = render_status(EndpointStatus(_doc()), elapsed=7, polling=False)
    assert "checked after" not in page and "watched for 7 s" in page and "NOT_UPDATING" not in page


# ----------------------------------------------------------------------- 5. results keep the index

def test_results_keep_the_input_index():
    from jupyter_serving.core.query_body import body_from_value
    from jupyter_serving.core.results import make_result

    df = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]] * 3, columns=COLUMNS, index=[14, 98, 75])
    body = body_from_value(df)
    assert "index" not in body.request["dataframe_split"]
    result = make_result("iris", {"predictions": [0, 1, 2]}, body.request, body.frame, 1.0, "iris-1")
    assert list(result.frame.index) == [14, 98, 75]
    assert list(df.join(result.frame[["prediction"]])["prediction"]) == [0, 1, 2]


MLFLOW_DUMP = ("Failed to enforce schema of data '   sepal_length  sepal_width  petal_length\n0 5.1 3.5 1.4' with "
               "schema '['sepal_length': double (required), 'sepal_width': double (required), 'petal_length': "
               "double (required), 'petal_width': double (required)]'. Error: Model is missing inputs "
               "['petal_width']. Note that there were extra inputs: []")


def test_missing_columns_come_first_in_one_line():
    from jupyter_serving.core.query_body import missing_columns

    assert missing_columns(MLFLOW_DUMP) == ("Missing column 'petal_width' — the model expects: sepal_length, "
                                            "sepal_width, petal_length, petal_width")
    assert missing_columns("Model is missing inputs ['a', 'b'].", ["a", "b", "c"]).startswith(
        "Missing columns 'a', 'b' — the model expects: a, b, c")
    assert missing_columns("something else") is None


# ---------------------------------------------------------------------------------- 7. log noise

def test_model_lines_leave_out_the_serving_stack():
    from jupyter_serving.core.log_lines import model_lines

    text = "\n".join([
        "INFO:     Started server process [22964]",
        'INFO:     127.0.0.1:53422 - "POST /invocations HTTP/1.1" 200 OK',
        "predicting 3 rows",
        "2026/11/24 12:33:55 WARNING mlflow.pyfunc: Detected one or more mismatches",
        "/site-packages/mlflow/types/utils.py:452: UserWarning: Hint: Inferred schema contains integer column(s)",
        "  warnings.warn(",
        "model says hi",
        "ERROR:    Exception in ASGI application",
    ])
    kept, hidden = model_lines(text)
    assert kept.splitlines() == ["predicting 3 rows", "model says hi", "ERROR:    Exception in ASGI application"]
    assert hidden == 5


# -------------------------------------------------------------------- 2. the panel keeps watching

class Scripted:
    """A client whose GETs answer from a script (the last answer repeats)."""

    poll_max_interval = 0.05

    def __init__(self, docs):
        self.docs = list(docs)
        self.gets = 0

    def get(self, name):
        self.gets += 1
        return EndpointStatus(self.docs[min(self.gets - 1, len(self.docs) - 1)])


def test_watch_panel_keeps_watching_a_ready_endpoint_and_sees_a_traffic_change():
    from jupyter_serving.widgets.status_panel import StatusPanel

    two = [_entity("a-1", "1"), _entity("b-1", "2")]
    client = Scripted([_doc(entities=two, routes={"a-1": 100, "b-1": 0})] * 4
                      + [_doc(entities=two, routes={"a-1": 90, "b-1": 10})])
    panel = StatusPanel("iris", client, interval=0.01, max_interval=0.02, until=None)
    try:
        deadline = time.monotonic() + 10
        while client.gets < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert panel.polling and panel.status.traffic == {"a-1": 90, "b-1": 10}
    finally:
        panel.close()
    assert panel.join(5) and "Stopped watching after" in panel.reason and "by hand" in panel.reason


def test_watch_panel_stops_when_until_holds_and_says_why():
    from jupyter_serving.core.status import WATCH_UNTIL
    from jupyter_serving.widgets.status_panel import StatusPanel

    client = Scripted([_doc(update="IN_PROGRESS", ready="NOT_READY")] * 2 + [_doc()])
    why, until = WATCH_UNTIL["ready"]
    panel = StatusPanel("iris", client, interval=0.01, max_interval=0.02, until=until, until_text=why)
    assert panel.join(10) and not panel.polling
    assert panel.reason.startswith("Stopped watching after") and "it is ready" in panel.reason
    assert "it is ready" in panel.body.value


# ------------------------------------------------------------------------- against the real backend

@pytest.fixture(scope="module")
def ip(local_backend):
    from jupyter_serving import api

    api.disconnect()
    return shell()


@pytest.fixture(scope="module")
def one_ep(ip, iris_models):
    """An endpoint serving main.ml.iris v1 alone (tests add and remove entities on it)."""
    from jupyter_serving import api

    name = unique("ux")
    ok(ip, f"%serve create {name} --model {iris_models['name']} --version {iris_models['versions'][0]}")
    yield name
    if api.get_client().exists(name):
        api.get_client().delete(name)


def test_add_and_remove_an_entity_in_one_line(ip, one_ep, iris_models):
    model, (v1, v2) = iris_models["name"], iris_models["versions"][:2]
    ran = ok(ip, f"%serve add {one_ep} --model {model} --version {v2}")
    status = ran.value
    assert status.entity_names == [f"iris-{v1}", f"iris-{v2}"] and status.traffic == {f"iris-{v1}": 100,
                                                                                      f"iris-{v2}": 0}
    assert f"`%serve traffic {one_ep} iris-{v1}=90 iris-{v2}=10`" in ran.out
    message = one_line_error(run(ip, f"%serve add {one_ep} --model {model} --version {v1} --entity-name c "
                                     f"--traffic iris-{v1}=50 iris-{v2}=20 c=20"))
    assert "sum to 90" in message
    message = one_line_error(run(ip, f"%serve add {one_ep} --model {model} --version {v2}"))
    assert f"already serves an entity named 'iris-{v2}'" in message and "--entity-name" in message
    status = ok(ip, f"%serve add {one_ep} --model {model} --version {v1} --entity-name canary "
                    f"--traffic iris-{v1}=60 iris-{v2}=30 canary=10").value
    assert status.traffic == {f"iris-{v1}": 60, f"iris-{v2}": 30, "canary": 10}
    status = ok(ip, f"%serve remove {one_ep} canary").value  # 10 % goes to the others, in proportion
    assert status.entity_names == [f"iris-{v1}", f"iris-{v2}"] and sum(status.traffic.values()) == 100
    assert status.traffic == {f"iris-{v1}": 67, f"iris-{v2}": 33}
    status = ok(ip, f"%serve remove {one_ep} iris-{v1}").value
    assert status.entity_names == [f"iris-{v2}"] and status.traffic == {f"iris-{v2}": 100}
    message = one_line_error(run(ip, f"%serve remove {one_ep} iris-{v2}"))
    assert "only served entity" in message


def test_remove_asks_for_traffic_when_ambiguous(ip, iris_models):
    from jupyter_serving import api

    client = api.get_client()
    name = unique("uxr")
    model, (v1, v2) = iris_models["name"], iris_models["versions"][:2]
    client.create(name, {"served_entities": [api.served_entity(model, v1), api.served_entity(model, v2),
                                             api.served_entity(model, v1, name="third")],
                         "traffic_config": {"routes": [
                             {"served_model_name": f"iris-{v1}", "traffic_percentage": 100},
                             {"served_model_name": f"iris-{v2}", "traffic_percentage": 0},
                             {"served_model_name": "third", "traffic_percentage": 0}]}}, timeout=180)
    try:
        message = one_line_error(run(ip, f"%serve remove {name} iris-{v1}"))
        assert "all at 0 % traffic" in message and f"--traffic iris-{v2}=50 third=50" in message
        status = ok(ip, f"%serve remove {name} iris-{v1} --traffic iris-{v2}=70 third=30").value
        assert status.traffic == {f"iris-{v2}": 70, "third": 30}
    finally:
        client.delete(name)


def test_create_says_where_a_model_registered_elsewhere_is(ip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fake_registry(tmp_path / "mlflow.db", "main.ux.lost", 1, "/nb/mlruns/0/models/m-1/artifacts")
    message = one_line_error(run(ip, f"%serve create {unique('lost')} --model main.ux.lost --version 1"))
    assert "is not in the local backend's registry" in message and "./mlflow.db" in message
    assert "mlflow.register_model('/nb/mlruns/0/models/m-1/artifacts', 'main.ux.lost')" in message


def test_typos_get_a_did_you_mean(ip, one_ep):
    typo = one_ep[:-1] + ("x" if one_ep[-1] != "x" else "y")
    for line in (f"%serve status {typo}", f"%serve logs {typo}", f"%serve delete {typo} --yes",
                 f"%query {typo} $row"):
        ip.user_ns["row"] = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=COLUMNS)
        message = one_line_error(run(ip, line))
        assert message.startswith(f"Endpoint '{typo}' does not exist. Did you mean '{one_ep}'?"), message
        assert f"`{line.replace(typo, one_ep)}`" in message
    assert "No serving endpoint named 'zzzz-nothing-like-it'" in one_line_error(
        run(ip, "%serve status zzzz-nothing-like-it"))


def test_watch_stops_on_until_or_timeout_and_says_why(ip, one_ep):
    ran = ok(ip, f"%serve status {one_ep} --watch --until stopped --timeout 1")
    assert "Stopped watching after 1 s: --timeout 1 s passed" in ran.out and "is Ready" in ran.out
    ran = ok(ip, f"%serve status {one_ep} --watch --until ready")
    assert "Stopped watching after 0 s: it is ready" in ran.out and ran.value.is_ready


def test_list_in_words(ip, one_ep):
    frame = ok(ip, "%serve list").value
    row = frame[frame["name"] == one_ep].iloc[0]
    assert row["state"] == "Ready"
    assert "s ago" in repr(frame) and "READY" not in repr(frame)


def test_query_keeps_the_index_and_a_missing_column_is_one_line_first(ip, one_ep, iris_models):
    sample = iris_models["X"].iloc[[14, 98, 75]]
    ip.user_ns["sample"] = sample
    frame = ok(ip, f"%query {one_ep} $sample").value
    assert list(frame.index) == [14, 98, 75]
    ip.user_ns["partial"] = sample.drop(columns=["petal_width"])
    message = one_line_error(run(ip, f"%query {one_ep} $partial"))
    assert message.startswith("Missing column 'petal_width' — the model expects: sepal_length, sepal_width, "
                              "petal_length, petal_width."), message


def test_schema_insert_puts_the_template_in_a_new_cell(ip, one_ep, monkeypatch):
    inserted = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: inserted.append((text, replace)))
    ran = ok(ip, f"%serve schema {one_ep} --insert")
    assert len(inserted) == 1 and inserted[0][1] is False
    assert inserted[0][0].startswith(f"%%query {one_ep}\n{{") and '"dataframe_split"' in inserted[0][0]
    assert "Inserted a %%query cell" in ran.out


def test_logs_default_to_the_models_lines_with_a_footer(ip, one_ep):
    ran = ok(ip, f"%serve logs {one_ep}")
    assert "INFO:     " not in ran.out
    assert f"`%serve logs {one_ep} --all`" in ran.out.splitlines()[-1]
    assert "INFO:     " in ok(ip, f"%serve logs {one_ep} --all").out
    only = ok(ip, f"%serve logs {one_ep} --model-only").out
    assert "INFO:     " not in only and "--all" not in only
