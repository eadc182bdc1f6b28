"""Fidelity to Databricks: metric names, notifications and telemetry config through the SDK, the
route-optimized fields, the 404 of a missing endpoint, 403 for a caller without permission on every
route, the refusal of legacy auto-capture, and Databricks-shaped refusals of bad input on the new routes."""
from __future__ import annotations

import json

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.service.serving import (
    EmailNotifications,
    TelemetryConfig,
    TelemetryFeature,
    TelemetryInferenceTableConfig,
    UnityCatalogTableNames,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.backend_helpers import Rest, entity
from tests.conftest import unique

IRIS = "main.ml.iris"
BASE = "/api/2.0/serving-endpoints"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def w(local_backend) -> WorkspaceClient:
    return WorkspaceClient(host=local_backend.url, token=local_backend.token)


@pytest.fixture(scope="module")
def target(rest, iris_models) -> dict:
    """A READY endpoint (not route-optimized) the per-endpoint tests act on; deleted at the end."""
    name = unique("fidelity")
    resp = rest.create(name, [entity(IRIS, "1")])
    assert resp.status_code == 200, resp.text
    yield rest.wait_ready(name)
    rest.delete(name)


def _user(rest: Rest, local_backend, prefix: str) -> tuple[Rest, str]:
    """A second user (a token minted by the admin) and their name."""
    user = unique(prefix) + "@example.com"
    made = rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens", json={"application_id": user})
    assert made.status_code == 200, made.text
    return Rest(local_backend.url, made.json()["token_value"]), user


def _samples(text: str) -> dict[str, list]:
    """{metric sample name: [(labels, value)]} of a Prometheus exposition."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(samples: dict, name: str, **labels) -> float:
    found = [v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())]
    assert found, (name, labels, sorted(samples))
    return sum(found)


def _assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error_code", "message", "details"}, body
    assert body["error_code"] == code, body
    assert isinstance(body["details"], list) and body["message"] and "\n" not in body["message"], body
    return body


# metrics ------------------------------------------------------------------------------------------
def test_metric_names_as_databricks_documents_them(w, rest, target):
    name, served = target["name"], target["config"]["served_entities"][0]["name"]
    assert rest.query(name, {"dataframe_records": [ROW]}).status_code == 200
    refused = rest.query(name, {"dataframe_records": [{"no_such_column": 1}]})  # the model answers 400
    assert refused.status_code == 400, refused.text
    text = w.serving_endpoints.export_metrics(name).contents.read().decode()
    samples = _samples(text)
    assert _value(samples, "request_count_total", served_entity_name=served) >= 2
    assert _value(samples, "request_4xx_count_total", served_entity_name=served, status="400") >= 1
    assert "request_5xx_count_total" not in samples or _value(samples, "request_5xx_count_total") == 0
    assert _value(samples, "request_latency_ms_count", served_entity_name=served) >= 2
    assert any(labels.get("le") == "+Inf" for labels, _ in samples["request_latency_ms_bucket"])
    assert _value(samples, "provisioned_concurrent_requests_total", served_entity_name=served) == 4
    assert _value(samples, "in_flight_requests", served_entity_name=served) == 0
    assert 0 <= _value(samples, "cpu_usage_percentage", served_entity_name=served) <= 100
    assert 0 < _value(samples, "mem_usage_percentage", served_entity_name=served) < 100  # a live process
    for old in ("request_count", "request_error_count_total", "provisioned_concurrent_requests"):
        assert old not in samples, old
    plain = rest.call("GET", f"{BASE}/{name}/metrics")
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/plain")
    assert set(_samples(plain.text)) == set(samples)


def test_status_counters_keep_the_gateway_call():
    """The gateway counts errors as `errors.labels(entity, status_class, status).inc()`."""
    from jupyter_serving.local.metrics import EndpointMetrics

    metrics = EndpointMetrics()
    metrics.errors.labels("e1", "4xx", "429").inc()
    metrics.errors.labels("e1", "5xx", "503").inc()
    metrics.errors.labels("e1", "3xx", "304").inc()  # not an error class: not counted
    samples = _samples(metrics.export({}).decode())
    assert _value(samples, "request_4xx_count_total", served_entity_name="e1", status="429") == 1
    assert _value(samples, "request_5xx_count_total", served_entity_name="e1", status="503") == 1


# notifications and telemetry config ----------------------------------------------------------------
def test_notifications_through_the_sdk(w, target):
    name = target["name"]
    sent = EmailNotifications(on_update_success=["ops@example.com"], on_update_failure=["oncall@example.com"])
    answer = w.serving_endpoints.update_notifications(name, email_notifications=sent)
    assert answer.name == name and answer.email_notifications == sent
    assert w.serving_endpoints.get(name).email_notifications == sent
    cleared = w.serving_endpoints.update_notifications(name)
    assert cleared.name == name and cleared.email_notifications is None
    assert w.serving_endpoints.get(name).email_notifications is None


def test_telemetry_config_through_the_sdk(w, target):
    name = target["name"]
    config = TelemetryConfig(enabled_telemetry_features=[TelemetryFeature.TELEMETRY_FEATURE_LOGS],
                             table_names=UnityCatalogTableNames(logs_table="main.telemetry.logs"),
                             inference_table_config=TelemetryInferenceTableConfig(sampling_fraction=0.5))
    detailed = w.serving_endpoints.patch_telemetry_config(name, telemetry_config=config)
    assert detailed.name == name and detailed.telemetry_config == config
    assert w.serving_endpoints.get(name).telemetry_config == config
    profile = TelemetryConfig(telemetry_profile_id="profile-1")
    assert w.serving_endpoints.patch_telemetry_config(name, telemetry_config=profile).telemetry_config == profile
    removed = w.serving_endpoints.patch_telemetry_config(name)
    assert removed.telemetry_config is None and w.serving_endpoints.get(name).telemetry_config is None


def test_create_keeps_its_typed_settings(rest, iris_models):
    name = unique("settings")
    notifications = {"on_update_success": ["a@example.com"]}
    telemetry = {"telemetry_profile_id": "p-1"}
    created = rest.create(name, [entity(IRIS, "1")], description="fraud model", email_notifications=notifications,
                          budget_policy_id="7f3c2a10-0000-4c3e-9e1b-0123456789ab", telemetry_config=telemetry)
    try:
        assert created.status_code == 200, created.text
        doc = rest.get(name)
        assert doc["description"] == "fraud model" and doc["email_notifications"] == notifications
        assert doc["budget_policy_id"] == "7f3c2a10-0000-4c3e-9e1b-0123456789ab"
        assert doc["telemetry_config"] == telemetry
    finally:
        rest.delete(name)


# route optimization --------------------------------------------------------------------------------
def test_endpoint_url_and_data_plane_info_only_when_route_optimized(w, rest, target, local_backend):
    assert "endpoint_url" not in target and "data_plane_info" not in target
    listed = {e["name"]: e for e in rest.call("GET", BASE).json()["endpoints"]}
    assert "endpoint_url" not in listed[target["name"]]
    name = unique("routeopt")
    assert rest.create(name, [entity(IRIS, "1")], route_optimized=True).status_code == 200
    try:
        doc = rest.wait_ready(name)
        url = f"{local_backend.url}/serving-endpoints/{name}/invocations"
        assert doc["route_optimized"] is True and doc["endpoint_url"] == url
        query_info = w.serving_endpoints.get(name).data_plane_info.query_info
        assert query_info.endpoint_url == url
        [grant] = json.loads(query_info.authorization_details)
        assert grant["object_path"] == f"/serving-endpoints/{doc['id']}"
        assert grant["actions"] == ["query_inference_endpoint"]
        direct = rest.session.post(url, json={"dataframe_records": [ROW]}, timeout=60)  # the caller's own token
        assert direct.status_code == 200 and len(direct.json()["predictions"]) == 1
        # databricks-sdk exchanges an OAuth token for a data-plane one; PAT credentials have none to give.
        with pytest.raises(ValueError, match="OAuth tokens are not available for pat authentication"):
            w.serving_endpoints_data_plane.query(name, dataframe_records=[ROW])
    finally:
        rest.delete(name)


# 404 and 403 -------------------------------------------------------------------------------------
NEW_ROUTES = [("PATCH", "/notifications", {"email_notifications": {}}),
              ("PATCH", "/telemetry-config", {}),
              ("POST", "/config:cancel", {})]


def test_missing_endpoint_answers_databricks_404(w, rest):
    ghost = unique("ghost")
    expected = f"Endpoint with name '{ghost}' does not exist."
    paths = [("GET", f"{BASE}/{ghost}", None), ("PUT", f"{BASE}/{ghost}/config", {"served_entities": []}),
             ("PUT", f"{BASE}/pt/{ghost}/config", {"config": {"served_entities": [
                 {"entity_name": IRIS, "entity_version": "1", "provisioned_model_units": 1}]}})]
    paths += [(method, f"{BASE}/{ghost}{suffix}", body) for method, suffix, body in NEW_ROUTES]
    for method, path, body in paths:
        answer = _assert_error(rest.call(method, path, json=body), 404, "RESOURCE_DOES_NOT_EXIST")
        assert answer["message"] == expected, (method, path, answer)
        [detail] = answer["details"]
        assert detail["@type"] == REQUEST_INFO and detail["request_id"], answer
    with pytest.raises(NotFound) as raised:
        w.serving_endpoints.get(ghost)
    assert str(raised.value) == expected
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert raised.value.get_error_details().request_info.request_id


def test_caller_without_permission_gets_403_everywhere(rest, target, local_backend):
    name = target["name"]
    before = rest.get(name)
    bob, _ = _user(rest, local_backend, "bob")
    base = f"{BASE}/{name}"
    calls = [("GET", base, None), ("DELETE", base, None), ("GET", base + "/metrics", None),
             ("PUT", base + "/config", {"served_entities": "not a list"}),
             ("PUT", f"{BASE}/pt/{name}/config", {"config": {"served_entities": [
                 {"entity_name": IRIS, "entity_version": "1", "provisioned_model_units": 1}]}}),
             ("PATCH", base + "/notifications", {"email_notifications": {"on_update_success": ["x@example.com"]}}),
             ("PATCH", base + "/notifications", {"email_notifications": "bad body"}),
             ("PATCH", base + "/telemetry-config", {"telemetry_config": {"telemetry_profile_id": "p"}}),
             ("POST", base + "/config:cancel", {}),
             ("POST", f"/serving-endpoints/{name}/invocations", {"dataframe_records": [ROW]})]
    for method, path, body in calls:
        answer = _assert_error(bob.call(method, path, json=body), 403, "PERMISSION_DENIED")
        assert before["creator"] not in answer["message"], answer
    assert rest.get(name) == before
    carol, carol_name = _user(rest, local_backend, "carol")  # may view, not manage
    grant = rest.call("PATCH", f"/api/2.0/permissions/serving-endpoints/{target['id']}", json={
        "access_control_list": [{"user_name": carol_name, "permission_level": "CAN_VIEW"}]})
    assert grant.status_code == 200, grant.text
    granted = rest.get(name)
    assert carol.call("GET", base).status_code == 200
    for method, suffix, body in NEW_ROUTES:
        _assert_error(carol.call(method, base + suffix, json=body), 403, "PERMISSION_DENIED")
    _assert_error(carol.call("PUT", f"{BASE}/pt/{name}/config", json={"config": {"served_entities": [
        {"entity_name": IRIS, "entity_version": "1", "provisioned_model_units": 1}]}}), 403, "PERMISSION_DENIED")
    assert rest.get(name) == granted


# legacy auto-capture ---------------------------------------------------------------------------------
def test_enabling_auto_capture_is_refused(rest, target, iris_models):
    capture = {"catalog_name": "main", "schema_name": "ml", "table_name_prefix": "iris", "enabled": True}
    name = unique("capture")
    refused = rest.call("POST", BASE, json={"name": name, "config": {
        "served_entities": [entity(IRIS, "1")], "auto_capture_config": capture}})
    answer = _assert_error(refused, 400, "INVALID_PARAMETER_VALUE")
    assert "auto_capture_config" in answer["message"] and "ai_gateway.inference_table_config" in answer["message"]
    assert rest.call("GET", f"{BASE}/{name}").status_code == 404
    before = rest.get(target["name"])
    update = rest.call("PUT", f"{BASE}/{target['name']}/config", json={
        "served_entities": [entity(IRIS, "1")], "auto_capture_config": capture})
    assert "ai_gateway.inference_table_config" in _assert_error(update, 400, "INVALID_PARAMETER_VALUE")["message"]
    assert rest.get(target["name"]) == before
    accepted = rest.call("POST", BASE, json={"name": name, "config": {
        "served_entities": [entity(IRIS, "1")], "auto_capture_config": {**capture, "enabled": False}}})
    try:
        assert accepted.status_code == 200, accepted.text
        assert rest.get(name)["pending_config"]["auto_capture_config"]["enabled"] is False
    finally:
        rest.delete(name)


# bad input on the new routes --------------------------------------------------------------------------
def _pt(**fields) -> dict:
    return {"entity_name": IRIS, "entity_version": "1", "provisioned_model_units": 10, **fields}


BAD = "INVALID_PARAMETER_VALUE"
EMAILS_101 = [f"u{i}@example.com" for i in range(101)]
BAD_CASES = [
    ("notifications-string", "PATCH", "/notifications", {"email_notifications": "ops@example.com"},
     "email_notifications"),
    ("notifications-not-a-list", "PATCH", "/notifications", {"email_notifications": {"on_update_success": "a@b.c"}},
     "email_notifications.on_update_success"),
    ("notifications-not-an-email", "PATCH", "/notifications", {"email_notifications": {"on_update_failure": ["ops"]}},
     "email_notifications.on_update_failure[0]"),
    ("notifications-email-321", "PATCH", "/notifications",
     {"email_notifications": {"on_update_success": ["a" * 310 + "@example.com"]}}, "on_update_success[0]"),
    ("notifications-101", "PATCH", "/notifications", {"email_notifications": {"on_update_success": EMAILS_101}},
     "on_update_success"),
    ("notifications-typo", "PATCH", "/notifications", {"email_notifications": {"on_update_sucess": ["a@b.c"]}},
     "on_update_sucess"),
    ("telemetry-string", "PATCH", "/telemetry-config", {"telemetry_config": "on"}, "telemetry_config"),
    ("telemetry-feature", "PATCH", "/telemetry-config", {"telemetry_config": {"enabled_telemetry_features": ["X"]}},
     "enabled_telemetry_features[0]"),
    ("telemetry-sampling-2", "PATCH", "/telemetry-config",
     {"telemetry_config": {"inference_table_config": {"sampling_fraction": 2}}}, "sampling_fraction"),
    ("telemetry-sampling-string", "PATCH", "/telemetry-config",
     {"telemetry_config": {"inference_table_config": {"sampling_fraction": "0.5"}}}, "sampling_fraction"),
    ("telemetry-two-level-table", "PATCH", "/telemetry-config",
     {"telemetry_config": {"table_names": {"logs_table": "main.logs"}}}, "table_names.logs_table"),
    ("telemetry-profile-and-tables", "PATCH", "/telemetry-config", {"telemetry_config": {
        "telemetry_profile_id": "p", "table_names": {"logs_table": "a.b.c"}}}, "telemetry_profile_id"),
    ("telemetry-typo", "PATCH", "/telemetry-config", {"telemetry_config": {"table_name": {}}}, "table_name"),
    ("pt-update-no-config", "PUT", "PT", {}, "config"),
    ("pt-update-units-0", "PUT", "PT", {"config": {"served_entities": [_pt(provisioned_model_units=0)]}},
     "provisioned_model_units"),
    ("pt-update-units-10001", "PUT", "PT", {"config": {"served_entities": [_pt(provisioned_model_units=10001)]}},
     "provisioned_model_units"),
    ("pt-update-units-string", "PUT", "PT", {"config": {"served_entities": [_pt(provisioned_model_units="5")]}},
     "provisioned_model_units"),
    ("pt-update-no-units", "PUT", "PT", {"config": {"served_entities": [{"entity_name": IRIS, "entity_version": "1"}]}},
     "provisioned_model_units"),
    ("pt-update-burst-yes", "PUT", "PT", {"config": {"served_entities": [_pt(burst_scaling_enabled="yes")]}},
     "burst_scaling_enabled"),
    ("pt-update-mixed", "PUT", "PT", {"config": {"served_entities": [_pt(workload_size="Small")]}},
     "workload_size"),
    ("pt-update-no-entities", "PUT", "PT", {"config": {"served_entities": []}}, "served_entities"),
    ("config-mixed", "PUT", "/config", {"served_entities": [_pt(min_provisioned_concurrency=4,
                                                                 max_provisioned_concurrency=8)]},
     "provisioned_model_units cannot be combined with"),
]
CREATE_CASES = [
    ("create-email-typo", BASE, {"email_notifications": {"on_update_succes": []}}, "on_update_succes"),
    ("create-email-invalid", BASE, {"email_notifications": {"on_update_success": ["nobody"]}}, "on_update_success"),
    ("create-budget-policy-space", BASE, {"budget_policy_id": "my policy"}, "budget_policy_id"),
    ("create-budget-policy-65", BASE, {"budget_policy_id": "a" * 65}, "budget_policy_id"),
    ("create-budget-policy-number", BASE, {"budget_policy_id": 7}, "budget_policy_id"),
    ("create-description-number", BASE, {"description": 5}, "description"),
    ("create-telemetry-list", BASE, {"telemetry_config": []}, "telemetry_config"),
    ("create-mixed-entity", BASE, {"config": {"served_entities": [_pt(workload_size="Small")]}},
     "provisioned_model_units cannot be combined with workload_size"),
    ("create-auto-capture-yes", BASE, {"config": {"served_entities": [entity(IRIS, "1")],
                                                  "auto_capture_config": {"enabled": "yes"}}}, "enabled"),
    ("pt-create-no-config", BASE + "/pt", {"config": None}, "config"),
    ("pt-create-units-negative", BASE + "/pt", {"config": {"served_entities": [_pt(provisioned_model_units=-1)]}},
     "provisioned_model_units"),
    ("pt-create-no-entity-name", BASE + "/pt", {"config": {"served_entities": [{"provisioned_model_units": 1}]}},
     "entity_name"),
    ("pt-create-scale-to-zero", BASE + "/pt", {"config": {"served_entities": [_pt(scale_to_zero_enabled=True)]}},
     "scale_to_zero_enabled"),
    ("pt-create-email-number", BASE + "/pt", {"config": {"served_entities": [_pt()]}, "email_notifications": 3},
     "email_notifications"),
    ("pt-create-budget-policy-bad", BASE + "/pt", {"config": {"served_entities": [_pt()]},
                                                   "budget_policy_id": "x/y"}, "budget_policy_id"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_on_an_endpoint_route(rest, target, case):
    _, method, suffix, body, names = case
    name = target["name"]
    path = f"{BASE}/pt/{name}/config" if suffix == "PT" else f"{BASE}/{name}{suffix}"
    before = rest.get(name)
    answer = _assert_error(rest.call(method, path, json=body), 400, BAD)
    assert names in answer["message"], answer
    assert rest.get(name) == before


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c[0] for c in CREATE_CASES])
def test_bad_input_on_create(rest, case):
    _, path, extra, names = case
    name = unique("badcreate")
    body = {"name": name, "config": {"served_entities": [entity(IRIS, "1")]}, **extra}
    answer = _assert_error(rest.call("POST", path, json=body), 400, BAD)
    assert names in answer["message"], answer
    assert rest.call("GET", f"{BASE}/{name}").status_code == 404


def test_cancel_without_an_update_in_progress(rest, target):
    name = target["name"]
    before = rest.get(name)
    answer = _assert_error(rest.call("POST", f"{BASE}/{name}/config:cancel"), 400, "INVALID_STATE")
    assert "no config update in progress" in answer["message"] and "NOT_UPDATING" in answer["message"]
    assert rest.get(name) == before
