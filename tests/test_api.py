"""The plain Python API (`jupyter_serving.api`) against the real local backend and real models."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from jupyter_serving import api
from jupyter_serving.core.errors import (
    ConflictError,
    DeploymentFailedError,
    InvalidInputError,
    NotFoundError,
    QueryError,
    ThrottledError,
)
from jupyter_serving.core.status import EndpointStatus
from tests.conftest import poll, unique
from tests.serving_shared import saturated, shared_iris_endpoint


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


@pytest.fixture(scope="module")
def iris_ep(local_backend, iris_models):
    return shared_iris_endpoint(local_backend, iris_models)


@pytest.fixture(scope="module")
def sleep_ep(client, sleep_model):
    """A Small endpoint (4 concurrent requests) serving the sleep model: throttling, stop/start."""
    name = unique("sleep")
    client.create(name, model=sleep_model["name"], version=sleep_model["version"], workload_size="Small",
                  timeout=180)
    yield name
    client.delete(name)


@pytest.fixture
def mutable_ep(client, iris_models):
    """A fresh one-entity endpoint (iris v1) for each test that changes it, so that no test depends
    on what another did before it."""
    name = unique("iris-mut")
    progress: list[tuple[str, float]] = []
    status = client.create(name, model=iris_models["name"], version=iris_models["versions"][0],
                           on_progress=lambda st, el: progress.append((st.state, el)), timeout=180)
    assert status.is_ready
    yield {"name": name, "progress": progress}
    if client.exists(name):
        client.delete(name)


def test_connect_resolves_the_local_backend_and_tags_the_user_agent(client, local_backend):
    assert client.is_local
    assert client.host == local_backend.url
    assert "local backend" in client.backend and local_backend.token not in client.backend
    assert "jupyter-serving/0.1.0" in client.workspace.config.user_agent
    assert client.cloud == local_backend.cloud


def test_create_waits_with_progress_and_ends_ready(mutable_ep, client):
    progress = mutable_ep["progress"]
    assert progress, "on_progress was never called"
    assert progress[0][0].startswith("Not ready")
    assert progress[-1][0] == "Ready"
    assert all(b[1] >= a[1] for a, b in zip(progress, progress[1:]))  # elapsed grows
    status = client.get(mutable_ep["name"])
    assert status.entity_names == ["iris-1"] and status.traffic == {"iris-1": 100}


def test_status_is_readable(client, iris_ep):
    status = client.status(iris_ep)
    assert isinstance(status, EndpointStatus)
    assert status.is_ready and status.is_settled and not status.is_stopped
    assert status.entity_names == ["iris-1", "iris-2"]
    assert status.traffic == {"iris-1": 50, "iris-2": 50}
    assert status.tags == {"suite": "shared"}
    text = repr(status)
    assert f"Endpoint {iris_ep}: Ready" in text
    assert "main.ml.iris v1" in text and "traffic 50%" in text and "CPU, Small" in text
    html = status._repr_html_()
    assert "<table>" in html and "iris-2" in html and "Ready" in html
    frame = status.entities_frame()
    assert list(frame["entity"]) == ["iris-1", "iris-2"] and list(frame["traffic"]) == [50, 50]
    assert status.as_sdk().name == iris_ep  # interop with the typed SDK


def test_list_is_a_dataframe(client, iris_ep):
    frame = client.list()
    assert list(frame.columns) == ["name", "state", "entities", "traffic", "creator", "updated"]
    row = frame[frame["name"] == iris_ep].iloc[0]
    assert row["state"] == "Ready"
    assert row["traffic"] == "iris-1=50%, iris-2=50%"
    assert "iris-1 (main.ml.iris v1)" in row["entities"]
    assert iris_ep in client.names()


def test_query_dataframe_is_aligned_with_the_input(client, iris_ep, iris_models):
    X = iris_models["X"].head(5)
    result = client.query(iris_ep, X)
    frame = result.frame
    assert isinstance(frame, pd.DataFrame) and len(frame) == 5
    assert list(frame.columns) == list(X.columns) + ["prediction"]
    assert (frame[list(X.columns)].values == X.values).all()
    assert set(frame["prediction"]) <= {0, 1, 2}
    assert result.served_model_name in ("iris-1", "iris-2")
    assert result.latency_ms > 0
    assert "latency" in repr(frame) and "served-model-name" in frame._repr_html_()


def test_query_one_entity_ignores_the_traffic_split(client, iris_ep, iris_models):
    for _ in range(3):
        result = client.query(iris_ep, iris_models["X"].head(2), entity="iris-2")
        assert result.served_model_name == "iris-2"


@pytest.mark.parametrize("body", [
    {"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]},
    {"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                         "data": [[5.1, 3.5, 1.4, 0.2]]}},
    {"inputs": {"sepal_length": [5.1], "sepal_width": [3.5], "petal_length": [1.4], "petal_width": [0.2]}},
    [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}],
    "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n",
], ids=["records", "split", "inputs", "list", "csv"])
def test_query_body_formats(client, iris_ep, body):
    frame = client.query(iris_ep, body).frame
    assert len(frame) == 1 and frame["prediction"].iloc[0] == 0
    assert "sepal_length" in frame.columns


def test_query_with_params_reaches_the_model(client, sleep_ep):
    started = time.perf_counter()
    result = client.query(sleep_ep, {"dataframe_records": [{"x": 1.0}, {"x": 2.0}], "params": {"sleep_ms": 300}})
    assert time.perf_counter() - started >= 0.3
    assert list(result.frame.columns) == ["x", "x_prediction"]
    assert list(result.frame["x_prediction"]) == [2.0, 4.0]


def test_set_traffic_validates_then_routes(client, mutable_ep, iris_models):
    name = mutable_ep["name"]
    with pytest.raises(InvalidInputError, match="sum to 90"):
        client.set_traffic(name, {"iris-1": 90})
    with pytest.raises(InvalidInputError, match="not a served entity"):
        client.set_traffic(name, {"nope": 100})
    assert client.get(name).traffic == {"iris-1": 100}


def test_update_version_renames_the_entity_and_moves_traffic(client, mutable_ep, iris_models):
    name = mutable_ep["name"]
    status = client.update_config(name, version=iris_models["versions"][1], timeout=180)
    assert status.is_ready and status.entity_names == ["iris-2"]
    assert status.traffic == {"iris-2": 100}
    assert status.entities[0]["entity_version"] == "2"
    assert client.query(name, iris_models["X"].head(1)).served_model_name == "iris-2"


def test_update_while_updating_is_refused_and_changes_nothing(client, mutable_ep):
    name = mutable_ep["name"]
    client.update_config(name, workload_size="Medium", wait=False)
    before = client.get(name)
    assert before.is_updating
    with pytest.raises(ConflictError, match="already updating"):
        client.update_config(name, workload_size="Large")
    with pytest.raises(ConflictError):
        client.set_traffic(name, {"iris-1": 100})
    after = client.get(name)
    assert after.pending_config["config_version"] == before.pending_config["config_version"]
    assert after.pending_entities[0]["workload_size"] == "Medium"
    final = client.wait(name, timeout=180)
    assert final.entities[0]["workload_size"] == "Medium"


def test_tags_add_and_remove(client, mutable_ep):
    name = mutable_ep["name"]
    assert client.tags(name, add={"team": "ml", "env": "dev"}) == {"team": "ml", "env": "dev"}
    assert client.tags(name, remove=["env"]) == {"team": "ml"}
    with pytest.raises(NotFoundError, match="no tag 'env'"):
        client.tags(name, remove=["env"])
    assert client.get(name).tags == {"team": "ml"}


def test_permissions_get_and_grant(client, iris_ep):
    perms = client.permissions(iris_ep)
    assert list(perms.columns) == ["principal", "type", "permission_level", "inherited"]
    assert "CAN_MANAGE" in set(perms["permission_level"])
    after = client.grant(iris_ep, "alice@example.com", "can query")
    row = after[after["principal"] == "alice@example.com"].iloc[0]
    assert row["permission_level"] == "CAN_QUERY" and row["type"] == "user"
    with pytest.raises(InvalidInputError, match="Unknown permission level"):
        client.grant(iris_ep, "bob@example.com", "OWNER")


def test_schema_and_request_template(client, iris_ep, iris_models):
    spec = client.openapi(iris_ep)
    assert spec["openapi"].startswith("3.") and spec["paths"]
    template = client.request_template(iris_ep)
    split = template["dataframe_split"]
    assert split["columns"] == list(iris_models["X"].columns)
    assert client.query(iris_ep, template).frame.shape[0] == len(split["data"])


def test_logs_and_build_logs(client, iris_ep):
    assert isinstance(client.logs(iris_ep, "iris-1"), str)
    build = client.build_logs(iris_ep, "iris-1", tail=5)
    assert build.strip() and len(build.splitlines()) <= 5
    both = client.logs(iris_ep)
    assert "=== iris-1 ===" in both and "=== iris-2 ===" in both
    with pytest.raises(NotFoundError, match="no served entity 'nope'"):
        client.logs(iris_ep, "nope")


def test_throttling_surfaces_at_once(client, sleep_ep, local_backend):
    """Small = 4 concurrent requests: beyond them the server answers 429, and the API does not retry."""
    with saturated(local_backend, sleep_ep):
        def throttled():
            started = time.perf_counter()
            try:
                client.query(sleep_ep, {"dataframe_records": [{"x": 1.0}]})
            except ThrottledError as err:
                return err, time.perf_counter() - started
            return None
        err, took = poll(throttled, timeout=10, interval=0.02, message="a 429")
    assert "429" in str(err) and took < 1.0
    assert "\n" not in str(err) and "concurrency" in str(err)


def test_stop_refuses_queries_and_start_serves_again(client, sleep_ep):
    status = client.stop(sleep_ep)
    assert status.is_stopped and status.state == "Not ready (Stopped)"
    assert client.stop(sleep_ep).is_stopped  # idempotent
    with pytest.raises(QueryError, match="is stopped") as info:
        client.query(sleep_ep, {"dataframe_records": [{"x": 1.0}]})
    assert f"client.start('{sleep_ep}')" in str(info.value)
    assert f"%serve start {sleep_ep}" in info.value.one_line("magic")
    status = client.start(sleep_ep, timeout=180)
    assert status.is_ready and not status.is_stopped
    assert list(client.query(sleep_ep, {"dataframe_records": [{"x": 3.0}]}).frame["x_prediction"]) == [6.0]


def test_failed_deployment_raises_and_keeps_the_message(client, broken_model):
    name = unique("broken")
    try:
        with pytest.raises(DeploymentFailedError) as info:
            client.create(name, model=broken_model["name"], version=broken_model["version"], timeout=180)
        message = str(info.value)
        assert "\n" not in message and name in message and f"client.build_logs('{name}'" in message
        assert "--build" in info.value.one_line("magic")
        assert client.get(name).update_failed
    finally:
        client.delete(name)


def test_failed_update_names_the_failing_entity_and_its_reason(client, iris_models, broken_model):
    name = unique("badupd")
    client.create(name, model=iris_models["name"], version=iris_models["versions"][0], timeout=180)
    try:
        with pytest.raises(DeploymentFailedError) as info:
            client.update_config(name, entity=f"iris-{iris_models['versions'][0]}", model=broken_model["name"],
                                 version=broken_model["version"], timeout=180)
        message = str(info.value)
        assert "served entity 'broken-1'" in message and "weights are corrupt" in message, message
        assert "previous config keeps serving" in message and f"build_logs('{name}', 'broken-1')" in info.value.hint
        assert f"logs {name} broken-1 --build" in info.value.one_line("magic")
        # the failed entity is gone from the endpoint, its build logs are not
        assert "weights are corrupt" in client.build_logs(name, "broken-1", tail=5)
        assert client.get(name).entity_names == [f"iris-{iris_models['versions'][0]}"]
    finally:
        client.delete(name)


def test_delete_then_not_found(client, iris_models):
    name = unique("gone")
    client.create(name, model=iris_models["name"], version=iris_models["versions"][0], wait=False)
    client.delete(name)
    with pytest.raises(NotFoundError, match=f"No serving endpoint named '{name}'"):
        client.get(name)
    with pytest.raises(NotFoundError):
        client.delete(name)


def test_latest_version_from_the_local_registry(client, iris_models):
    assert client.latest_version(iris_models["name"]) == max(iris_models["versions"], key=int)
    with pytest.raises(NotFoundError, match="not registered"):
        client.latest_version("main.ml.does_not_exist")


def test_default_client_is_shared(local_backend):
    api.disconnect()
    assert api.current_client() is None
    first = api.get_client()
    assert api.get_client() is first and api.current_client() is first
    again = api.connect()
    assert api.get_client() is again
