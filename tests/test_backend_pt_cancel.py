"""Provisioned throughput through the SDK's PT methods, and cancelling a config update.

PT endpoints are served like any registered model and keep their units. Cancelling runs on a private
backend in its own data dir (so that it can be restarted, and its model server processes told apart):
a slow-loading model keeps an update IN_PROGRESS until it is cancelled.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import PtEndpointCoreConfig, PtServedModel
from prometheus_client.parser import text_string_to_metric_families

from jupyter_serving.client import localctl
from jupyter_serving.client.service import ServingClient
from jupyter_serving.datadir import Paths
from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique

pytestmark = pytest.mark.backend

IRIS = "main.ml.iris"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
GOOD_QUERY = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": 0}}
EXTRA_ARGS = ["--scale-to-zero-idle", "600"]


# provisioned throughput ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def w(local_backend) -> WorkspaceClient:
    return WorkspaceClient(host=local_backend.url, token=local_backend.token)


def _concurrency(w: WorkspaceClient, name: str, entity_name: str) -> float:
    text = w.serving_endpoints.export_metrics(name).contents.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "provisioned_concurrent_requests_total" and \
                    sample.labels.get("served_entity_name") == entity_name:
                return sample.value
    raise AssertionError(f"no provisioned_concurrent_requests_total for {entity_name}: {text}")


def test_pt_create_and_update_through_the_sdk(w, iris_models):
    name = unique("pt")
    version = iris_models["versions"][0]
    served = PtServedModel(entity_name=IRIS, entity_version=version, provisioned_model_units=50,
                           burst_scaling_enabled=False, name="iris-pt")
    try:
        detailed = w.serving_endpoints.create_provisioned_throughput_endpoint(
            name, config=PtEndpointCoreConfig(served_entities=[served])).result()
        assert detailed.state.ready.value == "READY" and detailed.state.config_update.value == "NOT_UPDATING"
        [got] = detailed.config.served_entities
        assert (got.name, got.provisioned_model_units, got.burst_scaling_enabled) == ("iris-pt", 50, False)
        assert got.workload_size is None and got.state.deployment.value == "DEPLOYMENT_READY"
        assert _concurrency(w, name, "iris-pt") == 4  # 4 per 100 units, at least 4
        answer = w.serving_endpoints.query(name, dataframe_records=[ROW])
        assert answer.served_model_name == "iris-pt" and len(answer.predictions) == 1

        bigger = PtServedModel(entity_name=IRIS, entity_version=version, provisioned_model_units=250, name="iris-pt")
        updated = w.serving_endpoints.update_provisioned_throughput_endpoint_config(
            name, config=PtEndpointCoreConfig(served_entities=[bigger])).result()
        [got] = updated.config.served_entities
        assert updated.config.config_version == 2
        assert (got.provisioned_model_units, got.burst_scaling_enabled) == (250, True)  # burst: on by default
        assert w.serving_endpoints.get(name).config.served_entities[0].provisioned_model_units == 250
        assert _concurrency(w, name, "iris-pt") == 12
        assert w.serving_endpoints.query(name, dataframe_records=[ROW]).served_model_name == "iris-pt"
    finally:
        w.serving_endpoints.delete(name)


def test_pt_units_in_the_regular_create(iris_models, local_backend):
    """`ServedEntityInput` has `provisioned_model_units` too: accepted alone, refused beside workload settings."""
    rest = Rest(local_backend.url, local_backend.token)
    name = unique("pt-regular")
    mixed = rest.create(name, [entity(IRIS, "1", provisioned_model_units=100)])  # entity() sets workload_size
    assert mixed.status_code == 400 and "not both" in mixed.json()["message"], mixed.text
    alone = rest.create(name, [{"entity_name": IRIS, "entity_version": "1", "provisioned_model_units": 100}])
    try:
        assert alone.status_code == 200, alone.text
        [pending] = alone.json()["pending_config"]["served_entities"]
        assert pending["provisioned_model_units"] == 100 and pending["burst_scaling_enabled"] is True
        assert "workload_size" not in pending
    finally:
        rest.delete(name)


# cancelling an update (private backend) -------------------------------------------------------------------
@dataclass
class Private:
    home: Path
    info: localctl.BackendInfo
    rest: Rest
    models: dict[str, tuple[str, str]]

    def restart(self) -> None:
        assert localctl.stop(self.home)
        info, started = localctl.start(self.home, port=self.info.port, extra_args=EXTRA_ARGS)
        assert started and info.url == self.info.url

    def entity(self, key: str, **fields) -> dict:
        name, version = self.models[key]
        return entity(name, version, **fields)

    def servers(self, endpoint_id: str) -> dict[int, str]:
        """{pid: served entity} of the model servers writing their log under the endpoint's log dir."""
        logs = str(Paths(self.home).logs / endpoint_id) + "/"
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                log = os.readlink(f"/proc/{pid}/fd/1")
            except OSError:
                continue
            if b"scoring_worker" in cmdline and log.startswith(logs):
                found[int(pid)] = Path(log).stem
        return found


def _register(home: Path, models: dict) -> dict[str, tuple[str, str]]:
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
            out[key] = (f"main.cancel.{key}", str(mlflow.register_model(info.model_uri, f"main.cancel.{key}").version))
        return out
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    from tests.models import SleepModel, SlowLoadModel

    home = tmp_path_factory.mktemp("cancelhome")
    info, _ = localctl.start(home, extra_args=EXTRA_ARGS)
    try:
        models = _register(home, {"good": SleepModel(), "slow": SlowLoadModel()})
        yield Private(home, info, Rest(info.url, info.token), models)
    finally:
        localctl.stop(home)


def _slow_server(private: Private, endpoint_id: str) -> int:
    found = poll(lambda: [pid for pid, ent in private.servers(endpoint_id).items() if ent == "slow"], 60, 0.1,
                 "the slow model server to start")
    return found[0]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Querying:
    """Query an endpoint over and over on a thread until stopped; keeps each status and served entity."""

    def __init__(self, rest: Rest, name: str):
        self.rest, self.name, self.answers = rest, name, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            resp = self.rest.query(self.name, GOOD_QUERY)
            self.answers.append((resp.status_code, resp.headers.get("served-model-name")))

    def __enter__(self) -> Querying:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


def test_cancel_update_keeps_the_old_config_serving(private):
    rest, name = private.rest, unique("cancel-upd")
    assert rest.create(name, [private.entity("good", name="good")]).status_code == 200
    try:
        doc = rest.wait_ready(name)
        good_pid = next(pid for pid, ent in private.servers(doc["id"]).items() if ent == "good")
        update = rest.update(name, [private.entity("slow", name="slow")])
        assert update.status_code == 200 and update.json()["state"]["config_update"] == "IN_PROGRESS"
        slow_pid = _slow_server(private, doc["id"])
        with Querying(rest, name) as during:
            poll(lambda: len(during.answers) >= 3, 30, 0.05, "queries during the update")
            client = ServingClient(WorkspaceClient(host=private.info.url, token=private.info.token), is_local=True)
            status = client.cancel_update(name)
            poll(lambda: len(during.answers) >= 6, 30, 0.05, "queries after the cancel")
        assert set(during.answers) == {(200, "good")}, during.answers
        raw = status.raw
        assert raw["state"] == {"ready": "READY", "config_update": "UPDATE_CANCELED", "suspend": "NOT_SUSPENDED"}
        assert "pending_config" not in raw and raw["config"]["config_version"] == 1
        assert [e["name"] for e in raw["config"]["served_entities"]] == ["good"]
        assert not _alive(slow_pid), "the cancelled config's model server still runs"
        assert _alive(good_pid) and set(private.servers(doc["id"]).values()) == {"good"}
        # The cancelled deploy recorded its build log (its last write), and the state it left is the cancel's.
        build = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/slow/build-logs?config_version=2")
        assert build.status_code == 200 and "CANCELED" in build.json()["logs"], build.text
        assert rest.get(name)["state"]["config_update"] == "UPDATE_CANCELED"
        assert rest.query(name, GOOD_QUERY).status_code == 200
        again = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:cancel")
        assert again.status_code == 400 and again.json()["error_code"] == "INVALID_STATE", again.text

        private.restart()
        after = poll(lambda: (d := rest.get(name))["state"]["ready"] == "READY" and d, 120, 0.2,
                     "the endpoint to serve again after the restart")
        assert after["state"]["config_update"] == "UPDATE_CANCELED" and "pending_config" not in after
        assert after["config"]["config_version"] == 1
        assert set(private.servers(doc["id"]).values()) == {"good"}, "the cancelled config came back"
        assert rest.query(name, GOOD_QUERY).status_code == 200
        next_update = rest.update(name, [private.entity("good", name="good2")])
        assert next_update.json()["pending_config"]["config_version"] == 3  # version 2 was the cancelled one
        assert rest.wait_ready(name)["config"]["served_entities"][0]["name"] == "good2"
    finally:
        rest.delete(name)


def test_cancel_create_shows_the_cancelled_config(private):
    rest, name = private.rest, unique("cancel-new")
    created = rest.create(name, [private.entity("slow", name="slow")])
    assert created.status_code == 200, created.text
    endpoint_id = created.json()["id"]
    try:
        slow_pid = _slow_server(private, endpoint_id)
        canceled = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:cancel")
        assert canceled.status_code == 200, canceled.text
        doc = canceled.json()
        assert doc["state"] == {"ready": "NOT_READY", "config_update": "UPDATE_CANCELED", "suspend": "NOT_SUSPENDED"}
        assert "pending_config" not in doc and doc["config"]["config_version"] == 1
        [ent] = doc["config"]["served_entities"]
        assert ent["name"] == "slow" and ent["state"]["deployment"] == "DEPLOYMENT_ABORTED"
        assert rest.get(name) == doc
        assert not _alive(slow_pid) and private.servers(endpoint_id) == {}
        refused = rest.query(name, GOOD_QUERY)
        assert refused.status_code == 400 and refused.json()["error_code"] == "INVALID_STATE", refused.text
        fixed = rest.update(name, [private.entity("good", name="good")])
        assert fixed.status_code == 200 and fixed.json()["pending_config"]["config_version"] == 2, fixed.text
        assert rest.wait_ready(name)["config"]["config_version"] == 2
        assert rest.query(name, GOOD_QUERY).status_code == 200
    finally:
        rest.delete(name)


def test_cancel_needs_manage_permission(private):
    rest, name = private.rest, unique("cancel-perm")
    created = rest.create(name, [private.entity("slow", name="slow")])
    assert created.status_code == 200, created.text
    try:
        _slow_server(private, created.json()["id"])
        user = unique("dave") + "@example.com"
        token = rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens", json={"application_id": user})
        dave = Rest(private.info.url, token.json()["token_value"])
        refused = dave.call("POST", f"/api/2.0/serving-endpoints/{name}/config:cancel")
        assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED", refused.text
        assert rest.get(name)["state"]["config_update"] == "IN_PROGRESS"
    finally:
        rest.delete(name)


def test_cancel_update_on_databricks_says_there_is_no_api():
    """On a workspace (not the local backend) the client refuses at once, in one line."""
    from jupyter_serving.core.errors import ServingError

    class Config:
        host, workspace_id = "https://adb-1.azuredatabricks.net", None

    class Workspace:
        config = Config()

    client = ServingClient(Workspace(), cloud="azure", is_local=False)
    with pytest.raises(ServingError, match="Databricks has no public API to cancel") as raised:
        client.cancel_update("my-endpoint")
    assert "\n" not in str(raised.value)
