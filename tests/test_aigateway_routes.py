"""The AI Gateway's REST surface on the real backend: `PUT .../ai-gateway` (and create's `ai_gateway`)
validated as Databricks validates it, and the local routes that read usage and the inference table."""
from __future__ import annotations

import pytest

from tests.backend_helpers import Rest, entity
from tests.conftest import unique

AI_GATEWAY = "/api/2.0/serving-endpoints/{name}/ai-gateway"
USAGE = "/api/2.0/serving-endpoints/{name}/usage"
TABLE = "/api/2.0/serving-endpoints/{name}/inference-table"
TOKENS = "/api/2.0/token-management/on-behalf-of/tokens"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints/{id}"
TABLE_CONFIG = {"enabled": True, "catalog_name": "main", "schema_name": "logs", "table_name_prefix": "routes"}
VALID = {
    "rate_limits": [{"calls": 100, "key": "user", "renewal_period": "minute"},
                    {"tokens": 5000, "key": "user_group", "principal": "users", "renewal_period": "minute"},
                    {"calls": 10, "key": "service_principal", "principal": "6f1c2a3e-1b2c-4d5e-8f90-123456789abc"}],
    "usage_tracking_config": {"enabled": True},
    "inference_table_config": TABLE_CONFIG,
    "guardrails": {"input": {"invalid_keywords": ["password"], "valid_topics": ["serving"],
                             "pii": {"behavior": "MASK"}, "safety": False},
                   "output": {"pii": {"behavior": "BLOCK"}}},
    "fallback_config": {"enabled": False},
}


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def endpoint(rest, iris_models) -> dict:
    """An endpoint of this module's own (its AI Gateway is changed here; it need not be READY)."""
    name = unique("aigw")
    resp = rest.create(name, [entity(iris_models["name"], iris_models["versions"][0])])
    assert resp.status_code == 200, resp.text
    yield resp.json()
    rest.delete(name)


@pytest.fixture(scope="module")
def outsider(rest, local_backend) -> Rest:
    resp = rest.call("POST", TOKENS, json={"application_id": unique("outsider") + "@example.com"})
    assert resp.status_code == 200, resp.text
    return Rest(local_backend.url, resp.json()["token_value"])


def put(rest: Rest, name: str, body) -> dict:
    resp = rest.call("PUT", AI_GATEWAY.format(name=name), json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_valid_ai_gateway_is_kept_and_shown(rest, endpoint):
    name = endpoint["name"]
    assert put(rest, name, VALID) == VALID
    assert rest.get(name).get("ai_gateway") == VALID
    assert put(rest, name, {"usage_tracking_config": {"enabled": False}}) == {"usage_tracking_config": {"enabled": False}}


def test_the_sdk_puts_an_ai_gateway(endpoint, local_backend):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import (
        AiGatewayGuardrailParameters,
        AiGatewayGuardrailPiiBehavior,
        AiGatewayGuardrailPiiBehaviorBehavior,
        AiGatewayGuardrails,
        AiGatewayRateLimit,
        AiGatewayRateLimitKey,
        AiGatewayRateLimitRenewalPeriod,
        AiGatewayUsageTrackingConfig,
    )

    w = WorkspaceClient(host=local_backend.url, token=local_backend.token)
    answer = w.serving_endpoints.put_ai_gateway(
        endpoint["name"],
        rate_limits=[AiGatewayRateLimit(calls=10, tokens=1000, key=AiGatewayRateLimitKey.USER,
                                        renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)],
        guardrails=AiGatewayGuardrails(input=AiGatewayGuardrailParameters(
            pii=AiGatewayGuardrailPiiBehavior(behavior=AiGatewayGuardrailPiiBehaviorBehavior.BLOCK),
            invalid_keywords=["secret"])),
        usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True))
    assert answer.rate_limits[0].tokens == 1000 and answer.guardrails.input.invalid_keywords == ["secret"]
    assert w.serving_endpoints.get(endpoint["name"]).ai_gateway.usage_tracking_config.enabled is True


@pytest.mark.parametrize("body, field, words", [
    ({"rate_limits": [{"calls": 1, "key": "team"}]}, "rate_limits[0].key", "'user_group'"),
    ({"rate_limits": [{"calls": 1, "renewal_period": "hour"}]}, "rate_limits[0].renewal_period", "'minute'"),
    ({"rate_limits": [{"key": "user"}]}, "rate_limits[0]", "calls or tokens"),
    ({"rate_limits": [{"tokens": -1}]}, "rate_limits[0].tokens", "greater than or equal to 0"),
    ({"rate_limits": [{"calls": 1, "principal": 7, "key": "user"}]}, "rate_limits[0].principal", "string"),
    ({"usage_tracking_config": {"enabled": "yes"}}, "usage_tracking_config.enabled", "boolean"),
    ({"inference_table_config": {"enabled": True, "catalog_name": "main"}}, "inference_table_config",
     "schema_name, table_name_prefix"),
    ({"inference_table_config": {**TABLE_CONFIG, "schema_name": "my schema"}}, "inference_table_config.schema_name",
     "letters, digits and '_'"),
    ({"inference_table_config": {**TABLE_CONFIG, "table_name_prefix": "p" * 250}},
     "inference_table_config.table_name_prefix", "at most 247"),
    ({"guardrails": {"input": {"safety": True}}}, "guardrails.input.safety", "not available on the local backend"),
    ({"guardrails": {"output": {"pii": {"behavior": "REDACT"}}}}, "guardrails.output.pii.behavior", "'MASK'"),
    ({"guardrails": {"input": {"invalid_keywords": ["ok", " "]}}}, "guardrails.input.invalid_keywords[1]",
     "must not be empty"),
    ({"guardrails": {"input": {"valid_topics": "serving"}}}, "guardrails.input.valid_topics", "list"),
    ({"fallback_config": {}}, "fallback_config.enabled", "Field required"),
])
def test_invalid_bodies_are_refused_naming_the_field_and_change_nothing(rest, endpoint, body, field, words):
    name = endpoint["name"]
    before = rest.get(name).get("ai_gateway")
    resp = rest.call("PUT", AI_GATEWAY.format(name=name), json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error["message"].startswith(f"{field}: ") and words in error["message"], error["message"]
    assert error["details"][0]["field_violations"][0]["field"] == field
    assert rest.get(name).get("ai_gateway") == before


@pytest.mark.parametrize("body, words", [
    ({"rate_limits": [{"calls": 1, "key": "endpoint", "principal": "alice"}]}, "names no principal"),
    ({"rate_limits": [{"calls": 1, "key": "user_group"}]}, "needs principal"),
    ({"rate_limits": [{"calls": 1, "key": "user"}, {"tokens": 9, "key": "user"}]}, "merge them"),
    ({"rate_limits": [{"calls": 1, "key": "user_group", "principal": f"g{i}"} for i in range(6)]}, "At most 5"),
])
def test_rate_limits_that_do_not_go_together_are_refused(rest, endpoint, body, words):
    before = rest.get(endpoint["name"]).get("ai_gateway")
    resp = rest.call("PUT", AI_GATEWAY.format(name=endpoint["name"]), json=body)
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE", resp.text
    assert words in resp.json()["message"]
    assert rest.get(endpoint["name"]).get("ai_gateway") == before


def test_an_enabled_inference_table_must_be_disabled_before_it_moves(rest, endpoint):
    name = endpoint["name"]
    put(rest, name, {"inference_table_config": TABLE_CONFIG})
    moved = {"inference_table_config": {**TABLE_CONFIG, "catalog_name": "other"}}
    resp = rest.call("PUT", AI_GATEWAY.format(name=name), json=moved)
    assert resp.status_code == 400 and "disable it" in resp.json()["message"], resp.text
    assert rest.get(name).get("ai_gateway") == {"inference_table_config": TABLE_CONFIG}
    put(rest, name, {"inference_table_config": {**TABLE_CONFIG, "enabled": False}})
    put(rest, name, moved)
    put(rest, name, {"inference_table_config": {**TABLE_CONFIG, "enabled": False}})


def test_create_validates_its_ai_gateway(rest):
    name = unique("aigw-bad")
    bad = rest.create(name, [entity("main.ml.iris", "1")], ai_gateway={"guardrails": {"input": {"safety": True}}})
    assert bad.status_code == 400 and bad.json()["message"].startswith("ai_gateway.guardrails.input.safety"), bad.text
    rule = rest.create(name, [entity("main.ml.iris", "1")],
                       ai_gateway={"rate_limits": [{"calls": 1, "key": "user_group"}]})
    assert rule.status_code == 400 and "needs principal" in rule.json()["message"], rule.text
    assert rest.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 404


def test_the_read_routes_answer_empty_rows_at_first(rest, endpoint):
    name = endpoint["name"]
    put(rest, name, {"usage_tracking_config": {"enabled": True}, "inference_table_config": TABLE_CONFIG})
    usage = rest.call("GET", USAGE.format(name=name))
    assert usage.status_code == 200 and usage.json() == {"rows": []}, usage.text
    table = rest.call("GET", TABLE.format(name=name), params={"since_ms": 0, "limit": 10})
    assert table.status_code == 200 and table.json() == {"rows": [], "table": "main.logs.routes_payload"}, table.text
    put(rest, name, {})
    assert rest.call("GET", TABLE.format(name=name)).json() == {"rows": [], "table": None}


@pytest.mark.parametrize("params, field", [({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"),
                                           ({"since_ms": "yesterday"}, "since_ms"), ({"since_ms": -1}, "since_ms")])
def test_the_read_routes_validate_their_query(rest, endpoint, params, field):
    resp = rest.call("GET", USAGE.format(name=endpoint["name"]), params=params)
    assert resp.status_code == 400 and resp.json()["message"].startswith(f"{field}: "), resp.text


def test_other_users_need_view_for_usage_and_manage_for_the_inference_table(rest, endpoint, outsider):
    name = endpoint["name"]
    for path in (USAGE, TABLE):
        resp = outsider.call("GET", path.format(name=name))
        assert resp.status_code == 403 and resp.json()["error_code"] == "PERMISSION_DENIED", resp.text
    assert outsider.call("PUT", AI_GATEWAY.format(name=name), json={}).status_code == 403
    grant = {"access_control_list": [{"group_name": "users", "permission_level": "CAN_QUERY"}]}
    assert rest.call("PATCH", PERMISSIONS.format(id=endpoint["id"]), json=grant).status_code == 200
    try:
        assert outsider.call("GET", USAGE.format(name=name)).status_code == 200
        denied = outsider.call("GET", TABLE.format(name=name))
        assert denied.status_code == 403 and "CAN_MANAGE" in denied.json()["message"], denied.text
    finally:
        revoke = {"access_control_list": []}
        assert rest.call("PUT", PERMISSIONS.format(id=endpoint["id"]), json=revoke).status_code == 200


def test_missing_endpoints_answer_404(rest):
    for path in (USAGE, TABLE):
        resp = rest.call("GET", path.format(name="no-such-endpoint-aigw"))
        assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", resp.text
