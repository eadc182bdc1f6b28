"""The official clients, unchanged, against the local backend and real registered models."""
from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, NotFound, ResourceConflict
from databricks.sdk.service.serving import (
    DataframeSplitInput,
    EndpointCoreConfigInput,
    EndpointTag,
    RateLimit,
    RateLimitKey,
    RateLimitRenewalPeriod,
    Route,
    ServedEntityInput,
    ServingEndpointAccessControlRequest,
    ServingEndpointPermissionLevel,
    TrafficConfig,
)

from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique


@pytest.fixture(scope="module")
def w(local_backend) -> WorkspaceClient:
    return WorkspaceClient(host=local_backend.url, token=local_backend.token)


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def sdk_endpoint(w, iris_models):
    name = unique("sdk")
    served = ServedEntityInput(entity_name=iris_models["name"], entity_version=iris_models["versions"][0],
                               workload_size="Small", scale_to_zero_enabled=False)
    detailed = w.serving_endpoints.create_and_wait(
        name, config=EndpointCoreConfigInput(name=name, served_entities=[served]),
        tags=[EndpointTag(key="team", value="fraud")])
    yield name, detailed
    w.serving_endpoints.delete(name)


def test_sdk_create_get_list_query(w, sdk_endpoint, iris_models):
    name, detailed = sdk_endpoint
    assert detailed.state.ready.value == "READY"
    assert detailed.state.config_update.value == "NOT_UPDATING"
    entity_name = f"iris-{iris_models['versions'][0]}"
    [served] = detailed.config.served_entities
    assert served.name == entity_name and served.state.deployment.value == "DEPLOYMENT_READY"
    assert detailed.config.config_version == 1
    assert [(r.served_model_name, r.traffic_percentage) for r in detailed.config.traffic_config.routes] == [
        (entity_name, 100)]
    assert name in [e.name for e in w.serving_endpoints.list()]
    got = w.serving_endpoints.get(name)
    assert got.id and got.creator and got.permission_level.value == "CAN_MANAGE"
    assert [(t.key, t.value) for t in detailed.tags] == [("team", "fraud")]  # as created (a test below retags it)

    rows = iris_models["X"].head(5)
    result = w.serving_endpoints.query(name, dataframe_records=rows.to_dict("records"))
    assert result.served_model_name == entity_name
    assert len(result.predictions) == 5 and set(result.predictions) <= {0, 1, 2}
    split = w.serving_endpoints.query(name, dataframe_split=DataframeSplitInput(
        columns=list(rows.columns), data=rows.values.tolist()))
    assert split.predictions == result.predictions
    instances = w.serving_endpoints.query(name, inputs=rows.to_dict("records"))
    assert instances.predictions == result.predictions


def test_sdk_logs_openapi_metrics(w, sdk_endpoint, iris_models):
    name, detailed = sdk_endpoint
    entity_name = detailed.config.served_entities[0].name
    build = w.serving_endpoints.build_logs(name, entity_name).logs
    assert "Model server ready" in build and "main.ml.iris" in build
    w.serving_endpoints.query(name, dataframe_records=iris_models["X"].head(1).to_dict("records"))
    assert "Application startup complete" in w.serving_endpoints.logs(name, entity_name).logs

    spec = w.serving_endpoints.get_open_api(name).contents.read()
    import json

    spec = json.loads(spec)
    assert spec["openapi"] == "3.1.0" and spec["info"]["title"] == name
    split = spec["paths"][f"/served-models/{entity_name}/invocations"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["oneOf"][0]
    columns = split["properties"]["dataframe_split"]["properties"]["columns"]["items"]["enum"]
    assert columns == list(iris_models["X"].columns)
    assert split["examples"][0]["columns"] == columns and len(split["examples"][0]["data"]) == 3

    metrics = w.serving_endpoints.export_metrics(name).contents.read().decode()
    count_line = next(line for line in metrics.splitlines()
                      if line.startswith("request_count_total") and entity_name in line)
    assert float(count_line.split()[-1]) >= 1
    assert f'provisioned_concurrent_requests_total{{served_entity_name="{entity_name}"}} 4.0' in metrics


def test_sdk_tags_rate_limits_permissions(w, sdk_endpoint, local_backend, rest):
    name, detailed = sdk_endpoint
    tags = w.serving_endpoints.patch(name, add_tags=[EndpointTag(key="stage", value="dev")],
                                     delete_tags=["team"])
    assert [(t.key, t.value) for t in tags.tags] == [("stage", "dev")]

    limits = w.serving_endpoints.put(name, rate_limits=[RateLimit(
        calls=1000, key=RateLimitKey.ENDPOINT, renewal_period=RateLimitRenewalPeriod.MINUTE)])
    assert limits.rate_limits[0].calls == 1000

    alice = rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens",
                      json={"application_id": "alice@example.com"}).json()["token_value"]
    as_alice = Rest(local_backend.url, alice)
    hidden = as_alice.call("GET", f"/api/2.0/serving-endpoints/{name}")  # 403 naming only the name
    assert hidden.status_code == 403 and hidden.json()["error_code"] == "PERMISSION_DENIED"
    assert name not in [e["name"] for e in as_alice.call("GET", "/api/2.0/serving-endpoints").json()["endpoints"]]

    perms = w.serving_endpoints.update_permissions(detailed.id, access_control_list=[
        ServingEndpointAccessControlRequest(user_name="alice@example.com",
                                            permission_level=ServingEndpointPermissionLevel.CAN_QUERY)])
    levels = {a.user_name: a.all_permissions[0].permission_level.value for a in perms.access_control_list}
    assert levels["alice@example.com"] == "CAN_QUERY"
    assert as_alice.get(name)["permission_level"] == "CAN_QUERY"
    assert as_alice.query(name, {"dataframe_records": [{"sepal_length": 5.0, "sepal_width": 3.0,
                                                        "petal_length": 1.5, "petal_width": 0.2}]}).status_code == 200
    refused = as_alice.call("PATCH", f"/api/2.0/serving-endpoints/{name}/tags", json={"add_tags": [{"key": "x"}]})
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert [t.key for t in w.serving_endpoints.get(name).tags] == ["stage"]

    levels = w.serving_endpoints.get_permission_levels(detailed.id).permission_levels
    assert {lv.permission_level.value for lv in levels} == {"CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"}
    w.serving_endpoints.set_permissions(detailed.id, access_control_list=[])
    assert as_alice.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 403


def test_sdk_update_config_and_wait_and_errors(w, iris_models):
    name = unique("upd")
    v1, v2 = iris_models["versions"]
    model = iris_models["name"]
    w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(name=name, served_entities=[
        ServedEntityInput(entity_name=model, entity_version=v1, workload_size="Small", scale_to_zero_enabled=False)]))
    try:
        with pytest.raises(ResourceConflict, match="already exists"):
            w.serving_endpoints.create(name, config=EndpointCoreConfigInput(name=name, served_entities=[
                ServedEntityInput(entity_name=model, entity_version=v1, workload_size="Small",
                                  scale_to_zero_enabled=False)]))
        with pytest.raises(NotFound, match="no version 99"):
            w.serving_endpoints.update_config(name, served_entities=[ServedEntityInput(
                entity_name=model, entity_version="99", workload_size="Small", scale_to_zero_enabled=False)])
        updated = w.serving_endpoints.update_config_and_wait(name, served_entities=[
            ServedEntityInput(entity_name=model, entity_version=v1, workload_size="Small", scale_to_zero_enabled=False),
            ServedEntityInput(entity_name=model, entity_version=v2, workload_size="Small", scale_to_zero_enabled=False),
        ], traffic_config=TrafficConfig(routes=[Route(served_model_name=f"iris-{v1}", traffic_percentage=50),
                                                Route(served_model_name=f"iris-{v2}", traffic_percentage=50)]))
        assert updated.config.config_version == 2
        assert sorted(e.name for e in updated.config.served_entities) == sorted([f"iris-{v1}", f"iris-{v2}"])
        assert updated.pending_config is None
        with pytest.raises(BadRequest, match="sum to 90"):
            w.serving_endpoints.update_config(name, served_entities=[
                ServedEntityInput(entity_name=model, entity_version=v1, workload_size="Small",
                                  scale_to_zero_enabled=False),
                ServedEntityInput(entity_name=model, entity_version=v2, workload_size="Small",
                                  scale_to_zero_enabled=False),
            ], traffic_config=TrafficConfig(routes=[Route(served_model_name=f"iris-{v1}", traffic_percentage=40),
                                                    Route(served_model_name=f"iris-{v2}", traffic_percentage=50)]))
        assert w.serving_endpoints.get(name).config.config_version == 2
    finally:
        w.serving_endpoints.delete(name)
    with pytest.raises(NotFound):
        w.serving_endpoints.get(name)


def test_mlflow_deployments_client(local_backend, iris_models):
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client("databricks")
    name = unique("mlflow")
    model, (v1, v2) = iris_models["name"], iris_models["versions"]
    created = client.create_endpoint(name, config={"served_entities": [
        {"entity_name": model, "entity_version": v1, "workload_size": "Small", "scale_to_zero_enabled": False}]})
    assert created["name"] == name
    try:
        poll(lambda: client.get_endpoint(name)["state"]["ready"] == "READY", 120, 0.3, "READY")
        assert name in [e["name"] for e in client.list_endpoints()]
        rows = iris_models["X"].head(3).to_dict("split")
        rows.pop("index")
        prediction = client.predict(endpoint=name, inputs={"dataframe_split": rows})
        assert len(prediction["predictions"]) == 3
        client.update_endpoint(name, config={"served_entities": [
            {"entity_name": model, "entity_version": v2, "workload_size": "Small", "scale_to_zero_enabled": False}]})
        poll(lambda: client.get_endpoint(name)["state"]["config_update"] == "NOT_UPDATING", 120, 0.3, "update")
        endpoint = client.get_endpoint(name)
        assert [e["entity_version"] for e in endpoint["config"]["served_entities"]] == [v2]
        assert endpoint["config"]["config_version"] == 2
    finally:
        client.delete_endpoint(name)
    assert name not in [e["name"] for e in client.list_endpoints()]


def test_rest_stop_start(local_backend, iris_models):
    rest = Rest(local_backend.url, local_backend.token)
    name = unique("stop")
    assert rest.create(name, [entity(iris_models["name"], iris_models["versions"][0])]).status_code == 200
    try:
        rest.wait_ready(name)
        body = {"dataframe_records": iris_models["X"].head(1).to_dict("records")}
        assert rest.query(name, body).status_code == 200
        stopped = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:stop").json()
        assert stopped["state"] == {"ready": "NOT_READY", "config_update": "NOT_UPDATING", "suspend": "SUSPENDED"}
        refused = rest.query(name, body)
        assert refused.status_code == 400 and "stopped" in refused.json()["message"]
        started = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:start").json()
        assert started["state"]["config_update"] == "IN_PROGRESS" and started["pending_config"]["config_version"] == 2
        doc = rest.wait_ready(name)
        assert doc["config"]["config_version"] == 2
        assert rest.query(name, body).status_code == 200
    finally:
        rest.delete(name)
