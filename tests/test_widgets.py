"""The widgets, headless: driven through their traits and `button.click()` against the real local
backend (no browser; ipywidgets' DummyComm stands in for the frontend, as in ipywidgets' own tests).

Every wait polls with a deadline: nothing sleeps to synchronize.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from jupyter_serving import api
from jupyter_serving.client.catalog import ModelInfo
from jupyter_serving.core.errors import ConflictError, DeploymentFailedError
from jupyter_serving.core.status import EndpointStatus
from jupyter_serving.widgets import CreateEndpointForm, StaticCatalog, StatusPanel, TrafficEditor
from jupyter_serving.widgets.create_form import endpoint_name_for
from tests.conftest import poll, unique

DEPLOY_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


def idle(form, timeout=30.0):
    """Wait until the form has read the registry and every lookup it started has answered."""
    poll(lambda: form.state != "loading" and form.pending == 0, timeout, 0.02, "the form to be idle")
    return form


def settled(client, name, timeout=DEPLOY_TIMEOUT) -> EndpointStatus:
    return poll(lambda: (lambda s: s if s.is_settled else None)(client.get(name)), timeout, 0.1,
                f"endpoint {name} to settle")


def text_of(html: str) -> str:
    import html as _html
    import re

    text = _html.unescape(re.sub(r"<[^>]+>", " ", html))
    return re.sub(r"\s+", " ", text).replace(" .", ".").replace(" ,", ",")


# --------------------------------------------------------------------------------------------------
# import hygiene


def test_import_jupyter_serving_loads_no_widgets_and_no_mlflow():
    code = ("import sys, jupyter_serving, jupyter_serving.api, jupyter_serving.core.gpu_fit, "
            "jupyter_serving.core.traffic_split\n"
            "print([m for m in ('ipywidgets', 'mlflow') if m in sys.modules])\n"
            "import jupyter_serving.widgets\n"
            "print('ipywidgets' in sys.modules, 'mlflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    # the widgets need ipywidgets; mlflow waits until a form reads the registry
    assert out.stdout.split("\n")[:2] == ["[]", "True False"], out.stdout


# --------------------------------------------------------------------------------------------------
# the create form


def test_form_lists_registry_models_and_prefills_names(client, iris_models, sleep_model):
    form = idle(CreateEndpointForm(client, model=iris_models["name"]))
    assert {iris_models["name"], sleep_model["name"]} <= set(form.models)
    entity = form.entities[0]
    assert entity.model.value == iris_models["name"]
    newest = max(iris_models["versions"], key=int)
    assert list(entity.version.options)[0] == newest and entity.version.value == newest
    assert entity.entity_name.value == f"iris-{newest}"
    assert form.name.value == endpoint_name_for(iris_models["name"], form.existing)
    assert form.name.value.startswith("iris") and form.errors == [] and not form.create_button.disabled
    # artifact facts from the registry, and the advice they give
    assert entity.info.size_bytes > 1000 and "sklearn" in entity.info.flavors
    assert entity.recommendation().workload_type == "CPU"
    advice = text_of(entity.advice.value)
    assert "Model artifacts" in advice and "Recommended: CPU" in advice
    table = text_of(form.gpu_table.value)
    assert form.gpu_section.get_title(0).startswith("Workload types on AWS")
    for expected in ("GPU_SMALL", "T4", "16 GB", "GPU_MEDIUM", "A10G", "24 GB",
                     "GPU_XLARGE_8", "H100", "640 GB", "✔ fits"):
        assert expected in table, expected
    assert "GPU_LARGE " not in table  # Azure's type is not offered on AWS
    # picking another version renames the (auto-named) entity; a typed name sticks
    entity.version.value = iris_models["versions"][0]
    idle(form)
    assert entity.entity_name.value == f"iris-{iris_models['versions'][0]}"
    entity.entity_name.value = "champion"
    entity.version.value = newest
    idle(form)
    assert entity.entity_name.value == "champion"
    # another model re-derives the endpoint name while the user has not typed one
    entity.model.value = sleep_model["name"]
    idle(form)
    assert form.name.value.startswith("sleeper") and entity.version.value == sleep_model["version"]
    form.close()


def test_form_validates_with_the_backend_rules(client, iris_models):
    from jupyter_serving.core import rules

    form = idle(CreateEndpointForm(client, model=iris_models["name"], version=iris_models["versions"][0]))
    entity = form.entities[0]

    def expect(error_from_rules):
        assert form.errors and form.errors[0] == error_from_rules, form.errors
        assert form.create_button.disabled
        assert error_from_rules in text_of(form.validation.value)

    form.name.value = "databricks-mine"
    with pytest.raises(rules.RuleViolation) as err:
        rules.validate_endpoint_name("databricks-mine")
    expect(err.value.message)
    form.name.value = "has space"
    assert "use only letters, digits" in form.errors[0]
    form.name.value = unique("valid")
    assert form.errors == [] and not form.create_button.disabled

    entity.sizing.value = "concurrency"
    entity.min_concurrency.value, entity.max_concurrency.value = 4, 10
    with pytest.raises(rules.RuleViolation) as err:
        rules.normalize_config({"served_entities": [entity.entity()]})
    expect(err.value.message)
    assert "multiple of 4" in form.errors[0]
    entity.min_concurrency.value, entity.max_concurrency.value = 0, 8
    assert "needs scale_to_zero_enabled" in form.errors[0]
    entity.scale_to_zero.value = True
    assert form.errors == []
    assert "cold start" in text_of(entity.advice.value)  # the scale-to-zero caveat

    # two entities with the same name: the backend's uniqueness rule
    second = form.add_entity(iris_models["name"], iris_models["versions"][0])
    idle(form)
    assert second.entity_name.value == entity.entity_name.value
    assert "is used twice" in form.errors[0]
    second.entity_name.value = "challenger"
    assert form.errors == []
    # a taken endpoint name is refused before anything is sent
    form.existing.add("taken-name")
    form.name.value = "taken-name"
    assert "already exists" in form.errors[0] and form.create_button.disabled
    form.close()


def test_form_gpu_advice_from_the_artifact_size():
    """GPU sizing in the form, with a catalog of made-up large models (no backend needed)."""
    class Offline:
        cloud, is_local, backend, poll_max_interval = "aws", True, "an offline test backend", 0.1

        def names(self):
            return []

    catalog = StaticCatalog({"main.llm.chat": {"1": ModelInfo("main.llm.chat", "1", 15_000_000_000, ("transformers",))},
                             "main.ml.tiny": {"4": ModelInfo("main.ml.tiny", "4", 40_000, ("sklearn",))}})
    form = idle(CreateEndpointForm(Offline(), catalog=catalog, model="main.llm.chat"))
    entity = form.entities[0]
    assert entity.recommendation().workload_type == "GPU_MEDIUM"  # 18 GB needed: an A10G, not a T4
    assert "will be slow on CPU" in text_of(entity.advice.value)
    assert not entity.use_recommended.disabled
    entity.workload_type.value = "GPU_SMALL"
    assert "Too small" in text_of(entity.advice.value)
    assert "Too small" in text_of(form.validation.value)  # a warning, not a blocking error
    assert form.errors == [] and not form.create_button.disabled
    assert "✖ too small" in form.gpu_table.value and "◀ chosen" in form.gpu_table.value
    entity.use_recommended.click()
    assert entity.workload_type.value == "GPU_MEDIUM" and entity.use_recommended.disabled
    assert "GPU replica" in text_of(entity.advice.value)
    # GPU types the SDK enum lacks: the code posts the REST body instead of the typed call
    entity.workload_type.value = "GPU_MEDIUM_8"
    code = form.sdk_code()
    assert "api_client.do(\"POST\", \"/api/2.0/serving-endpoints\"" in code and "'GPU_MEDIUM_8'" in code
    compile(code, "<form code>", "exec")
    form.close()


@pytest.fixture(scope="module")
def created(client, iris_models):
    """An endpoint created through the form: iris v1 and v2, traffic 70/30."""
    v1, v2 = iris_models["versions"][:2]
    form = idle(CreateEndpointForm(client, model=iris_models["name"], version=v1))
    name = unique("wform")
    form.name.value = name
    second = form.add_entity()  # same model as the first, at the version it does not serve
    idle(form)
    assert (second.model.value, second.version.value) == (iris_models["name"], v2)
    assert form.entity_names() == [f"iris-{v1}", f"iris-{v2}"]
    assert form.traffic.values == [50, 50]
    form.traffic.sliders[0].value = 70  # the other slider follows
    assert form.traffic.values == [70, 30] and form.traffic.sliders[1].value == 30
    assert second.entity()["workload_size"] == "Small"
    assert form.errors == []
    started = time.monotonic()
    form.create_button.click()
    returned_after = time.monotonic() - started
    observed = {"creating": form.state}
    status = None
    try:
        poll(lambda: form.state in ("ready", "failed"), DEPLOY_TIMEOUT, 0.1, "the form's create to finish")
        status = client.get(name)
    finally:
        yield {"name": name, "form": form, "status": status, "returned_after": returned_after,
               "observed": observed, "versions": (v1, v2)}
        form.close()
        if client.exists(name):
            client.delete(name)


def test_create_runs_in_the_background_and_ends_ready(created, client):
    form = created["form"]
    assert created["returned_after"] < 1.0  # click() returned at once: the kernel is not blocked
    assert created["observed"]["creating"] == "creating"
    assert form.state == "ready", (form.message, form.panel.body.value if form.panel else None)
    assert "is Ready" in form.message
    status = created["status"]
    assert status.is_ready and status.config_update == "NOT_UPDATING"
    v1, v2 = created["versions"]
    assert status.traffic == {f"iris-{v1}": 70, f"iris-{v2}": 30}
    assert [e["workload_size"] for e in status.entities] == ["Small", "Small"]
    panel = form.panel  # the live progress in the form
    assert panel is not None and panel.state == "READY" and not panel.polling and panel.polls >= 2
    assert "Ready" in text_of(panel.body.value) and f"iris-{v1}" in panel.body.value
    assert form.errors == [] and form.create_button.disabled  # created: no second click on the same name
    form.name.value = created["name"] + "-2"
    assert not form.create_button.disabled
    form.name.value = created["name"]


def test_show_code_gives_the_magic_and_sdk_code(created):
    form = created["form"]
    v1, v2 = created["versions"]
    name = created["name"]
    form.code_button.value = True
    shown = text_of(form.code.value)
    line = (f"%serve create {name} --model main.ml.iris --version {v1} --workload-size Small "
            f"--model main.ml.iris --version {v2} --workload-size Small --traffic iris-{v1}=70 iris-{v2}=30")
    assert form.magic_line() == line and line in shown
    assert "create_and_wait(" in shown and "ServingModelWorkloadType.CPU" in shown
    assert form.code.layout.display is None
    form.code_button.value = False
    assert form.code.layout.display == "none"


def test_generated_code_recreates_the_endpoint(created, client):
    """The notebook can be re-run without the form: the SDK code creates the same endpoint."""
    form = created["form"]
    again = unique("wcode")
    code = form.sdk_code().replace(repr(created["name"]), repr(again))
    namespace: dict = {}
    try:
        exec(compile(code, "<form code>", "exec"), namespace)
        status = client.get(again)
        assert status.is_ready and status.traffic == created["status"].traffic
        assert [(e["entity_name"], e["entity_version"], e["workload_size"]) for e in status.entities] == [
            (e["entity_name"], e["entity_version"], e["workload_size"]) for e in created["status"].entities]
    finally:
        if client.exists(again):
            client.delete(again)


# --------------------------------------------------------------------------------------------------
# the traffic editor


def test_traffic_editor_applies_a_new_split(created, client):
    name = created["name"]
    v1, v2 = created["versions"]
    e1, e2 = f"iris-{v1}", f"iris-{v2}"
    editor = TrafficEditor(name, client)
    assert editor.current == {e1: 70, e2: 30} and editor.new_split == {e1: 70, e2: 30}
    assert editor.apply_button.disabled  # nothing changed yet
    editor.sliders.sliders[1].value = 60  # moving one slider rebalances the other
    assert editor.new_split == {e1: 40, e2: 60}
    compare = text_of(editor.compare.value)
    assert "Current" in compare and "New" in compare and "70%" in compare and "40%" in compare and "-30" in compare
    assert not editor.apply_button.disabled
    started = time.monotonic()
    editor.apply_button.click()
    assert time.monotonic() - started < 1.0 and editor.state == "applying"
    poll(lambda: editor.state in ("applied", "failed"), DEPLOY_TIMEOUT, 0.05, "the traffic update")
    assert editor.state == "applied", editor.message
    assert client.get(name).traffic == {e1: 40, e2: 60}  # the new split is what GET returns
    assert editor.current == {e1: 40, e2: 60} and editor.apply_button.disabled
    assert "Applied" in editor.message and "40" in editor.message
    editor.reset_button.click()
    assert editor.new_split == editor.current
    editor.close()


def test_status_panel_and_refused_traffic_update_while_updating(created, client):
    """An update in progress: the status panel follows it to the end while this thread works, and a
    traffic change meanwhile is refused, saying the previous split still serves."""
    name = created["name"]
    before = client.get(name)
    editor = TrafficEditor(name, client)
    editor.even_button.click()
    assert sum(editor.new_split.values()) == 100 and editor.new_split != editor.current
    # a real update: one entity moves to Medium (a new model server starts)
    entity = before.entity_names[1]
    client.update_config(name, entity=entity, workload_size="Medium", wait=False)
    panel = StatusPanel(name, client, interval=0.1)
    watcher = StatusPanel(name, client, interval=0.1)

    editor.apply_button.click()
    poll(lambda: editor.state in ("applied", "failed"), 30, 0.05, "the refused update")
    assert editor.state == "failed"
    serving = " ".join(f"{k}={v}" for k, v in before.traffic.items())
    assert "already updating" in editor.message and f"previous split still serves: {serving}" in editor.message
    assert "still serves" in text_of(editor.progress.value)

    # closing a panel stops its polling thread
    watcher.close()
    assert watcher.join(5) and not watcher.polling

    # the test thread keeps working (its own requests to the backend) while the panel polls from its
    # thread; nothing here waits on the panel
    calls = 0
    seen_pending = False
    while panel.polling:
        seen_pending |= "Pending config" in panel.body.value
        assert name in client.names()
        calls += 1
    assert calls >= 2
    assert panel.join(5)
    assert panel.state == "READY" and panel.config_update == "NOT_UPDATING"
    assert int(panel.config_version) == int(before.config_version) + 1
    assert panel.polls >= 2 and seen_pending
    assert "Ready" in text_of(panel.body.value) and "Medium" in panel.body.value
    after = client.get(name)
    assert after.traffic == before.traffic  # the refused change changed nothing
    editor.close()
    panel.close()


def test_status_panel_follows_a_new_endpoint_to_ready(client, sleep_model):
    name = unique("wstatus")
    client.create(name, model=sleep_model["name"], version=sleep_model["version"], wait=False)
    try:
        panel = StatusPanel(name, client, interval=0.1)
        assert panel.polling
        # other work on this thread while the panel updates from its own
        work = 0
        while panel.polling:
            work += sum(i * i for i in range(10000)) > 0
        assert work > 0
        assert panel.state == "READY" and panel.config_update == "NOT_UPDATING" and panel.polls >= 2
        assert panel.logs == ""  # no failure, no build logs
        assert f"sleeper-{sleep_model['version']}" in panel.body.value
        polls = panel.polls
        panel.refresh_button.click()  # settled: one more GET, then it stops again
        poll(lambda: not panel.polling and panel.polls > polls, 10, 0.05, "the refresh")
    finally:
        client.delete(name)


def test_form_create_failure_shows_the_build_logs(client, broken_model):
    form = idle(CreateEndpointForm(client, model=broken_model["name"]))
    name = unique("wbroken")
    form.name.value = name
    try:
        form.create_button.click()
        poll(lambda: form.state in ("ready", "failed"), DEPLOY_TIMEOUT, 0.1, "the failing create")
        assert form.state == "failed"
        assert "failed to deploy" in form.message and "weights are corrupt" in form.message
        panel = form.panel
        assert panel.config_update == "UPDATE_FAILED" and panel.logs
        body = text_of(panel.body.value)
        assert "Build logs of broken-1" in body and "Update failed" in body
    finally:
        form.close()
        if client.exists(name):
            client.delete(name)


# --------------------------------------------------------------------------------------------------
# behaviour that needs a misbehaving backend: a scripted client


class Scripted:
    """A stand-in ServingClient: GET answers come from a list; set_traffic fails as told."""

    cloud, is_local, backend, poll_max_interval = "aws", True, "a scripted backend", 0.2

    def __init__(self, docs, fail=None):
        self.docs = list(docs)
        self.fail = fail
        self.gets: list[float] = []
        self.lock = threading.Lock()

    def get(self, name):
        with self.lock:
            self.gets.append(time.monotonic())
            doc = self.docs.pop(0) if len(self.docs) > 1 else self.docs[0]
        return EndpointStatus(doc)

    def set_traffic(self, name, routes, wait=True, on_progress=None, **_):
        on_progress(self.get(name), 0.5)
        raise self.fail


def endpoint_doc(update="NOT_UPDATING", ready="READY", traffic=(("a-1", 50), ("b-1", 50)), version=3):
    return {
        "name": "ep", "state": {"ready": ready, "config_update": update},
        "config": {"config_version": version,
                   "served_entities": [{"name": n, "entity_name": f"m.{n[0]}", "entity_version": "1",
                                        "workload_size": "Small", "state": {"deployment": "DEPLOYMENT_READY"}}
                                       for n, _ in traffic],
                   "traffic_config": {"routes": [{"served_model_name": n, "traffic_percentage": p}
                                                 for n, p in traffic]}},
    }


def test_failed_traffic_update_shows_the_split_that_still_serves():
    failure = DeploymentFailedError("Endpoint 'ep' update failed: served entity 'b-1': out of memory.",
                                    "See the build logs.")
    client = Scripted([endpoint_doc()], fail=failure)
    editor = TrafficEditor("ep", client)
    editor.set_split({"a-1": 90, "b-1": 10})
    editor.apply_button.click()
    poll(lambda: editor.state == "failed", 5, 0.01, "the failure")
    assert "out of memory" in editor.message
    assert editor.message.endswith("The previous split still serves: a-1=50 b-1=50.")
    assert editor.current == {"a-1": 50, "b-1": 50} and editor.new_split == {"a-1": 90, "b-1": 10}
    assert not editor.apply_button.disabled  # retry is possible
    editor.sliders.sliders[0].value = 80  # editing again leaves the failed state
    assert editor.state == "editing"


def test_traffic_editor_refuses_while_updating_and_stopped():
    editor = TrafficEditor("ep", Scripted([endpoint_doc(update="IN_PROGRESS")]))
    editor.set_split({"a-1": 10, "b-1": 90})
    assert editor.apply_button.disabled and "in progress" in text_of(editor.progress.value)
    with pytest.raises(ValueError):
        editor.set_split({"a-1": 100})
    conflict = ConflictError("Endpoint 'ep' is already updating; cannot change its traffic now", "Wait.")
    assert "already updating" in str(conflict)


def test_status_panel_backs_off_and_stops_at_its_deadline():
    client = Scripted([endpoint_doc(update="IN_PROGRESS", ready="NOT_READY")])
    panel = StatusPanel("ep", client, interval=0.02, max_interval=0.16, timeout=1.2)
    assert panel.join(10) and not panel.polling
    gaps = [b - a for a, b in zip(client.gets, client.gets[1:])]
    assert len(gaps) >= 5
    assert gaps[-1] > gaps[0] * 3  # 0.02 s growing ×1.5 per poll...
    assert max(gaps) < 0.16 + 0.1  # ...capped at max_interval
    assert "Stopped watching after" in panel.error
    assert panel.state == "NOT_READY" and panel.config_update == "IN_PROGRESS"
