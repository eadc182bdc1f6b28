"""%serve and %%query in a real IPython InteractiveShell against the real local backend."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jupyter_serving import api
from jupyter_serving.core.results import QueryFrame
from jupyter_serving.core.status import EndpointStatus
from tests.conftest import unique
from tests.magic_helpers import ok, one_line_error, run, shell
from tests.serving_shared import shared_iris_endpoint

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def ip(local_backend):
    api.disconnect()
    return shell()


@pytest.fixture(scope="module")
def iris_ep(local_backend, iris_models):
    return shared_iris_endpoint(local_backend, iris_models)


@pytest.fixture(scope="module")
def magic_ep(ip, iris_models):
    """Created through the magic: two --model groups, a traffic split, a tag. Tests that change it
    set the state they start from (traffic, running) themselves, so they pass in any order."""
    name = unique("mag")
    v1, v2 = iris_models["versions"][:2]
    ran = ok(ip, f"%serve create {name} --model {iris_models['name']} --version {v1} "
                 f"--model {iris_models['name']} --version {v2} --traffic iris-1=80 iris-2=20 --tag team=ml")
    yield {"name": name, "created": ran}
    if api.get_client().exists(name):
        api.get_client().delete(name)


@pytest.fixture(scope="module")
def llm_ep(ip, local_backend):
    """An endpoint answering like a foundation model (chat, completions, embeddings)."""
    import cloudpickle
    import mlflow

    import tests.serving_models as models
    from tests.conftest import _register

    cloudpickle.register_pickle_by_value(models)
    version = _register("main.ml.llm_echo", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=models.LLMEcho()))
    name = unique("llm")
    api.get_client().create(name, model="main.ml.llm_echo", version=version, timeout=180)
    yield name
    api.get_client().delete(name)


def test_load_ext_is_light_and_names_the_backend(local_backend):
    code = (
        "import sys, time\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "t = time.perf_counter()\n"
        "ip.run_line_magic('load_ext', 'jupyter_serving')\n"
        "took = time.perf_counter() - t\n"
        "print('TOOK', took)\n"
        "print('HEAVY', [m for m in ('mlflow', 'databricks.sdk', 'pandas') if m in sys.modules])\n"
        "print('MAGICS', 'serve' in ip.magics_manager.magics['line'], 'query' in ip.magics_manager.magics['cell'])\n"
    )
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (f"jupyter-serving 0.1.0: %serve and %%query will use the local backend at "
                        f"{local_backend.url} (from DATABRICKS_HOST).")
    assert local_backend.token not in proc.stdout
    took = float(next(line for line in lines if line.startswith("TOOK")).split()[1])
    assert took < 0.5
    assert "HEAVY []" in proc.stdout and "MAGICS True True" in proc.stdout


def test_load_ext_without_workspace_says_local_starts_on_first_use(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env["JUPYTER_SERVING_HOME"] = str(tmp_path / "home")
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "none.cfg")
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "InteractiveShell.instance().run_line_magic('load_ext', 'jupyter_serving')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "will use the local backend (started on first use" in proc.stdout
    assert not (tmp_path / "home").exists()  # nothing started, nothing written


def test_load_ext_keeps_a_magic_the_host_owns(tmp_path):
    code = ("from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "ip.register_magic_function(lambda line='', cell=None: 'host', 'line_cell', 'query')\n"
            "ip.run_line_magic('load_ext', 'jupyter_serving')\n"
            "print('HOST', ip.run_line_magic('query', 'x'))\n"
            "print('OURS', 'serving_query' in ip.magics_manager.magics['cell'])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env["JUPYTER_SERVING_HOME"] = str(tmp_path)
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "none.cfg")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "%serve and %%serving_query will use" in proc.stdout
    assert "HOST host" in proc.stdout and "OURS True" in proc.stdout


def test_help(ip):
    ran = ok(ip, "%serve help")
    for sub in ("create", "list", "status", "update", "traffic", "stop", "start", "delete", "logs", "schema",
                "permissions", "tags"):
        assert f"  {sub}" in ran.out
    assert "usage: %serve create" in ok(ip, "%serve help create").out
    assert "usage: %serve traffic" in ok(ip, "%serve traffic --help").out
    assert "%serve SUBCOMMAND" in ok(ip, "%serve").out


def test_a_registered_command_is_dispatched_listed_and_completed(ip):
    """Adding a subcommand is registering it: dispatch, help, NAME completion and options follow."""
    from types import SimpleNamespace

    from jupyter_serving.magics import registry

    def arguments(p):
        p.add_argument("name")
        p.add_argument("--loud", action="store_true")

    registry.command("shout", "say an endpoint's name loudly", arguments=arguments, takes_name=True)(
        lambda ctx, opts: opts.name.upper() + ("!" if opts.loud else ""))
    try:
        assert ok(ip, "%serve shout abc --loud").value == "ABC!"
        assert "  shout" in ok(ip, "%serve help").out
        assert "usage: %serve shout [-h] [--loud] name" in ok(ip, "%serve help shout").out
        ip.magics_manager.registry["ServeMagics"].names.remember(["ep-1", "ep-2"])
        magics = ip.magics_manager.registry["ServeMagics"]
        assert "shout" in magics.complete_serve(SimpleNamespace(line="%serve sh"))
        assert magics.complete_serve(SimpleNamespace(line="%serve shout ")) == ["ep-1", "ep-2"]
        assert magics.complete_serve(SimpleNamespace(line="%serve shout ep-1 --l")) == ["--help", "--loud"]
        assert "unrecognized arguments: --soft" in one_line_error(run(ip, "%serve shout abc --soft"))
    finally:
        del registry.COMMANDS["shout"]
        ip.magics_manager.registry["ServeMagics"].names.forget()


def test_connect(ip, local_backend):
    assert f"Connected to the local backend at {local_backend.url}." in ok(ip, "%serve connect local").out
    assert f"Connected to the local backend at {local_backend.url}." in ok(ip, "%serve connect").out
    assert api.current_client().is_local


def test_create_shows_progress_and_ends_with_the_summary(magic_ep):
    ran = magic_ep["created"]
    status = ran.value
    assert isinstance(status, EndpointStatus) and status.is_ready
    assert "Creating" in ran.out and f"{magic_ep['name']}: Not ready (Updating)" in ran.out
    assert f"Endpoint {magic_ep['name']}: Ready" in ran.out  # the summary is displayed
    assert status.traffic == {"iris-1": 80, "iris-2": 20} and status.tags == {"team": "ml"}


def test_create_no_wait_and_from_json_variable(ip, iris_models):
    name = unique("mag-json")
    ip.user_ns["cfg"] = {"served_entities": [{"entity_name": iris_models["name"],
                                              "entity_version": iris_models["versions"][0],
                                              "workload_size": "Small", "scale_to_zero_enabled": False}]}
    ran = ok(ip, f"%serve create {name} --from-json $cfg --no-wait")
    assert ran.value.is_updating and "follow it with `%serve status" in ran.out
    ran = ok(ip, f"%serve delete {name} --yes")
    assert f"Deleted endpoint '{name}'." in ran.out


def test_ctrl_c_stops_waiting_not_the_deployment(ip, iris_models, monkeypatch):
    """Interrupt the wait on the first progress report; the endpoint keeps deploying. Without
    --version the latest registered version is served."""
    from jupyter_serving.magics.progress import Progress

    def interrupt(self, status, elapsed):
        raise KeyboardInterrupt
    monkeypatch.setattr(Progress, "__call__", interrupt)
    name = unique("mag-int")
    ran = ok(ip, f"%serve create {name} --model {iris_models['name']}")
    try:
        assert ran.value is None
        assert f"Stopped waiting; endpoint '{name}' keeps deploying" in ran.out
        monkeypatch.undo()
        status = api.get_client().wait(name, timeout=120)
        assert status.is_ready and status.entities[0]["entity_version"] == max(iris_models["versions"], key=int)
    finally:
        ok(ip, f"%serve delete {name} --yes")


def test_create_from_json_file(ip, iris_models, tmp_path):
    name = unique("mag-file")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"name": name, "config": {"served_entities": [
        {"entity_name": iris_models["name"], "entity_version": "1", "workload_size": "Small"}]},
        "tags": [{"key": "src", "value": "file"}]}))
    ran = ok(ip, f"%serve create {name} --from-json {path} --no-wait")
    assert ran.value.tags == {"src": "file"}
    ok(ip, f"%serve delete {name} --yes")


def test_list(ip, iris_ep, magic_ep):
    frame = ok(ip, "%serve list").value
    assert isinstance(frame, pd.DataFrame)
    assert {iris_ep, magic_ep["name"]} <= set(frame["name"])
    row = frame[frame["name"] == magic_ep["name"]].iloc[0]
    status = api.get_client().get(magic_ep["name"])  # other tests move its traffic: compare with now
    assert row["traffic"] == ", ".join(f"{e}={p}%" for e, p in status.traffic.items())
    assert row["state"] == status.state
    assert magic_ep["name"] in ok(ip, "%serve list --names").value


def test_status(ip, iris_ep):
    status = ok(ip, f"%serve status {iris_ep}").value
    assert isinstance(status, EndpointStatus) and status.name == iris_ep
    assert ok(ip, f"%serve status {iris_ep} --watch").value.is_settled  # settled: returns at once


def test_query_cell_json_records(ip, iris_ep):
    body = json.dumps({"dataframe_records": [dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2])),
                                             dict(zip(COLUMNS, [6.7, 3.0, 5.2, 2.3]))]})
    frame = ok(ip, f"%%query {iris_ep}\n{body}").value
    assert isinstance(frame, QueryFrame) and isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == COLUMNS + ["prediction"]
    assert list(frame["prediction"]) == [0, 2]
    assert frame.served_model_name in ("iris-1", "iris-2") and frame.latency_ms > 0


@pytest.mark.parametrize("body", [
    '{"dataframe_split": {"columns": %s, "data": [[5.1, 3.5, 1.4, 0.2]]}}' % json.dumps(COLUMNS),
    '{"instances": [%s]}' % json.dumps(dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2]))),
    '{"inputs": %s}' % json.dumps({c: [v] for c, v in zip(COLUMNS, [5.1, 3.5, 1.4, 0.2])}),
    '{"dataframe_records": [%s], "params": {}}' % json.dumps(dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2]))),
    ",".join(COLUMNS) + "\n5.1, 3.5, 1.4, 0.2\n",
    "$one_row",
    "$one_record",
    "$records_list",
    "$json_text",
    '{"dataframe_split": $one_row}',
    '{"dataframe_records": [{"sepal_length": $sl, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}',
], ids=["split", "instances", "inputs", "params", "csv", "var-df", "var-dict", "var-list", "var-str",
        "json-with-df-var", "json-with-scalar-var"])
def test_query_body_formats(ip, iris_ep, body):
    ip.user_ns.update(
        one_row=pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=COLUMNS),
        one_record=dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2])),
        records_list=[dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2]))],
        json_text=json.dumps({"dataframe_records": [dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2]))]}),
        sl=np.float64(5.1),
    )
    frame = ok(ip, f"%%query {iris_ep}\n{body}").value
    assert len(frame) == 1 and frame["prediction"].iloc[0] == 0
    assert frame["sepal_length"].iloc[0] == 5.1


def test_query_json_is_not_mangled_by_ipython_expansion(ip, iris_ep):
    """IPython would expand {x} and $x on the line; the body and the line stay as typed."""
    ip.user_ns["x"] = "oops"
    body = '{"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, ' \
           '"petal_width": 0.2}], "params": {}}'
    frame = ok(ip, f"%query {iris_ep} {body}").value
    assert frame["prediction"].iloc[0] == 0


def test_query_line_with_var_and_output(ip, iris_ep, iris_models):
    ip.user_ns["df"] = iris_models["X"].head(4)
    ran = ok(ip, f"%query {iris_ep} $df")
    assert list(ran.value.columns) == COLUMNS + ["prediction"] and len(ran.value) == 4
    ran = ok(ip, f"%query {iris_ep} $df -o preds")
    assert ran.value is None and ran.out == ""
    assert list(ip.user_ns["preds"].columns) == COLUMNS + ["prediction"]


def test_query_cell_output_raw_entity_timeout(ip, iris_ep, iris_models):
    ip.user_ns["df"] = iris_models["X"].head(2)
    ran = ok(ip, f"%%query {iris_ep} -o stored --entity iris-2 --timeout 30\n$df")
    assert ran.value is None and ran.out == ""
    assert ip.user_ns["stored"].served_model_name == "iris-2"
    raw = ok(ip, f"%%query {iris_ep} --raw\n$df").value
    assert isinstance(raw, dict) and len(raw["predictions"]) == 2


def test_query_chat_completions_embeddings(ip, llm_ep):
    ip.user_ns["question"] = 'What is "MLflow"? {x} $y'
    frame = ok(ip, f'%%query {llm_ep}\n{{"messages": [{{"role": "user", "content": $question}}], "n": 2}}').value
    assert frame.to_dict("records") == [
        {"index": i, "role": "assistant", "content": 'echo: What is "MLflow"? {x} $y', "finish_reason": "stop"}
        for i in range(2)]
    assert frame.served_model_name == "llm_echo-1"
    frame = ok(ip, f'%%query {llm_ep}\n{{"prompt": ["abc", "xy"], "max_tokens": 5}}').value
    assert list(frame["prompt"]) == ["abc", "xy"] and list(frame["text"]) == ["cba", "yx"]
    ip.user_ns["texts"] = ["hello", "a"]
    frame = ok(ip, f'%%query {llm_ep}\n{{"input": $texts}}').value
    assert frame.to_dict("list") == {"input": ["hello", "a"], "embedding": [[5.0, 0.0], [1.0, 1.0]]}
    raw = ok(ip, f'%%query {llm_ep} --raw\n{{"input": "x"}}').value
    assert raw["object"] == "list"


def test_schema_prints_a_template_that_queries(ip, iris_ep):
    ran = ok(ip, f"%serve schema {iris_ep}")
    lines = ran.out.splitlines()
    assert lines[1] == f"%%query {iris_ep}"
    template = json.loads("\n".join(lines[2:]))
    assert template["dataframe_split"]["columns"] == COLUMNS
    rows = template["dataframe_split"]["data"]
    assert len(ok(ip, f"%%query {iris_ep}\n{json.dumps(template)}").value) == len(rows)
    spec = ok(ip, f"%serve schema {iris_ep} --openapi").value
    assert spec["openapi"].startswith("3.")


def test_logs(ip, iris_ep):
    assert "=== iris-1 ===" in ok(ip, f"%serve logs {iris_ep}").out
    ran = ok(ip, f"%serve logs {iris_ep} iris-1 --build --tail 3")
    assert 1 <= len(ran.out.strip().splitlines()) <= 3


def test_permissions(ip, iris_ep):
    frame = ok(ip, f"%serve permissions {iris_ep}").value
    assert "CAN_MANAGE" in set(frame["permission_level"])
    frame = ok(ip, f"%serve permissions {iris_ep} --grant group:data-team CAN_VIEW").value
    row = frame[frame["principal"] == "data-team"].iloc[0]
    assert row["type"] == "group" and row["permission_level"] == "CAN_VIEW"


def test_tags(ip, magic_ep):
    name = magic_ep["name"]
    frame = ok(ip, f"%serve tags {name} env=dev owner=ana").value
    assert dict(zip(frame["key"], frame["value"])) == {"team": "ml", "env": "dev", "owner": "ana"}
    frame = ok(ip, f"%serve tags {name} --remove env owner").value
    assert dict(zip(frame["key"], frame["value"])) == {"team": "ml"}
    assert list(ok(ip, f"%serve tags {name}").value["key"]) == ["team"]


def test_traffic(ip, magic_ep):
    name = magic_ep["name"]
    ok(ip, f"%serve start {name}")
    status = ok(ip, f"%serve traffic {name} iris-1=0 iris-2=100").value
    assert status.traffic == {"iris-1": 0, "iris-2": 100}
    ip.user_ns["row"] = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=COLUMNS)
    for _ in range(3):
        assert ok(ip, f"%query {name} $row").value.served_model_name == "iris-2"


def test_update_from_json(ip, magic_ep):
    """A full core config from a variable: same entities (their servers are reused), new traffic."""
    name = magic_ep["name"]
    status = api.get_client().get(name)
    ip.user_ns["core"] = {
        "served_entities": [{k: e[k] for k in ("name", "entity_name", "entity_version", "workload_size")}
                            for e in status.entities],
        "traffic_config": {"routes": [{"served_model_name": "iris-1", "traffic_percentage": 10},
                                      {"served_model_name": "iris-2", "traffic_percentage": 90}]}}
    after = ok(ip, f"%serve update {name} --from-json $core").value
    assert after.traffic == {"iris-1": 10, "iris-2": 90}
    assert after.config_version == status.config_version + 1
    ok(ip, f"%serve traffic {name} iris-1=0 iris-2=100")


def test_update_and_watch(ip, magic_ep):
    name = magic_ep["name"]
    ok(ip, f"%serve start {name}")
    ok(ip, f"%serve traffic {name} iris-1=0 iris-2=100")
    size = "Large" if api.get_client().get(name).entity("iris-1").get("workload_size") == "Medium" else "Medium"
    ran = ok(ip, f"%serve update {name} --entity iris-1 --workload-size {size} --no-wait")
    assert ran.value.is_updating
    watched = ok(ip, f"%serve status {name} --watch")
    assert "Watching" in watched.out
    final = watched.value
    assert final.is_settled and final.entity("iris-1")["workload_size"] == size
    assert final.traffic == {"iris-1": 0, "iris-2": 100}


def test_stop_start(ip, magic_ep):
    name = magic_ep["name"]
    ok(ip, f"%serve start {name}")
    stopped = ok(ip, f"%serve stop {name}").value
    assert stopped.is_stopped
    assert "already stopped" in ok(ip, f"%serve stop {name}").out
    ran = ok(ip, f"%serve start {name}")
    assert ran.value.is_ready and "Starting" in ran.out
    assert "nothing to start" in ok(ip, f"%serve start {name}").out


def test_delete(ip, iris_models):
    name = unique("del")
    ok(ip, f"%serve create {name} --model {iris_models['name']} --version {iris_models['versions'][0]} --no-wait")
    assert name in ok(ip, "%serve list --names").value
    assert f"Deleted endpoint '{name}'." in ok(ip, f"%serve delete {name} --yes").out
    assert name not in ok(ip, "%serve list --names").value


def test_completion(ip, iris_ep):
    ok(ip, "%serve list")  # fills the name cache
    _, matches = ip.complete("st", "%serve st", 9)
    assert {"status", "start", "stop"} <= set(matches)
    _, matches = ip.complete("", "%serve status ", 14)
    assert iris_ep in matches
    prefix = iris_ep[:8]
    line = f"%serve logs {prefix}"
    _, matches = ip.complete(prefix, line, len(line))
    assert iris_ep in matches
    line = f"%serve logs {iris_ep} "
    _, matches = ip.complete("", line, len(line))
    assert {"iris-1", "iris-2"} <= set(matches)
    line = "%serve create x --workload-"
    _, matches = ip.complete("--workload-", line, len(line))
    assert {"--workload-size", "--workload-type"} <= set(matches)
    line = f"%%query {prefix}"
    _, matches = ip.complete(prefix, line, len(line))
    assert iris_ep in matches
    line = f"%query {iris_ep} --entity "
    _, matches = ip.complete("", line, len(line))
    assert "iris-2" in matches
    line = f"%serve traffic {iris_ep} "
    _, matches = ip.complete("", line, len(line))
    assert "iris-1=" in matches


def test_config_switches(ip):
    from IPython.core.error import UsageError

    from jupyter_serving.core.errors import ServingError

    ran = run(ip, "%serve status no-such-endpoint-x")
    assert type(ran.error) is UsageError
    try:
        ok(ip, "%config ServeMagics.short_errors = False")
        ran = run(ip, "%serve status no-such-endpoint-x")
        assert isinstance(ran.error, ServingError) and "Traceback" in ran.out
        ok(ip, "%config ServeMagics.short_errors = True")
        ok(ip, "%config ServeMagics.raise_errors = True")
        ran = run(ip, "%serve status no-such-endpoint-x")
        assert isinstance(ran.error, ServingError) and not isinstance(ran.error, UsageError)
        assert ran.out.strip() == f"NotFoundError: {ran.error.one_line('magic')}"  # still one line
    finally:
        ok(ip, "%config ServeMagics.raise_errors = False")
        ok(ip, "%config ServeMagics.short_errors = True")
    one_line_error(run(ip, "%serve status no-such-endpoint-x"))


def test_local_backend_starts_on_demand_and_again(ip, tmp_path):
    """`connect local` starts the backend when none runs; if it goes away, the next command starts it
    again. (Runs last in the module: it reconnects to the session backend at the end.)"""
    from jupyter_serving.client import localctl

    home = tmp_path / "on-demand"
    try:
        ran = ok(ip, f"%serve connect local --data-dir {home}")
        first = localctl.status(home)
        assert first is not None and f"Connected to the local backend at {first.url}." in ran.out
        localctl.stop(home)
        assert ok(ip, "%serve list").value.empty  # the backend was started again
        second = localctl.status(home)
        assert second is not None and second.pid != first.pid
    finally:
        localctl.stop(home)
        api.connect()


def test_widget_subcommands_return_the_forms(ip, iris_ep, iris_models):
    from jupyter_serving.widgets import CreateEndpointForm, TrafficEditor

    form = ok(ip, f"%serve ui --model {iris_models['name']}").value
    assert isinstance(form, CreateEndpointForm)
    editor = ok(ip, f"%serve traffic {iris_ep}").value
    assert isinstance(editor, TrafficEditor)
    assert "No serving endpoint named" in one_line_error(run(ip, "%serve traffic no-such-endpoint"))
    form.close()
    editor.close()
