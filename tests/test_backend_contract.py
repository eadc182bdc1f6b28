"""The control plane's request contract: hostile and malformed requests on every route are refused with a
Databricks error body (error_code, message, details; never FastAPI's `detail`, never a 500), on a
keep-alive connection that stays open, and change nothing.

Each case is sent on one `http.client` connection, followed on the same socket by a list request;
the endpoints and the test endpoint's permissions are compared before and after.
"""
from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from tests.backend_helpers import Rest, entity
from tests.conftest import unique

IRIS = "main.ml.iris"
CREATE = "/api/2.0/serving-endpoints"
CONFIG = "/api/2.0/serving-endpoints/{name}/config"
TAGS = "/api/2.0/serving-endpoints/{name}/tags"
AI_GATEWAY = "/api/2.0/serving-endpoints/{name}/ai-gateway"
RATE_LIMITS = "/api/2.0/serving-endpoints/{name}/rate-limits"
PERMISSIONS = "/api/2.0/permissions/serving-endpoints/{id}"
TOKENS = "/api/2.0/token-management/on-behalf-of/tokens"
BUILD_LOGS = "/api/2.0/serving-endpoints/{name}/served-models/iris-1/build-logs"
DEEP = b"[" * 100_000 + b"]" * 100_000
MIB = 1024 * 1024
AUTH = object()  # the session's valid bearer token


@dataclass
class Case:
    id: str
    method: str
    path: str
    body: object = None  # dict/list/str: sent as JSON; bytes: sent raw; None: no body
    status: int = 400
    code: str | None = "INVALID_PARAMETER_VALUE"
    auth: object = AUTH
    names: str | None = None  # a field the message must name
    headers: dict = field(default_factory=dict)


def _entity(**fields):
    return {"entity_name": IRIS, "entity_version": "1", "workload_size": "Small", "scale_to_zero_enabled": False,
            **fields}


def _create(*entities, **extra):
    return {"name": "contract-new", "config": {"served_entities": list(entities or [_entity()])}, **extra}


def _create_raw(fragment: bytes) -> bytes:
    return b'{"name": "contract-new", "config": {"served_entities": ' + fragment + b"}}"


BAD, MALFORMED, TOO_LARGE = "INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"

CREATE_CASES = [
    Case("create-not-json", "POST", CREATE, b"{not json", code=MALFORMED),
    Case("create-body-list", "POST", CREATE, [1], code=MALFORMED),
    Case("create-body-string", "POST", CREATE, "abc", code=MALFORMED),
    Case("create-empty-body", "POST", CREATE, b"", code=MALFORMED),
    Case("create-text-plain", "POST", CREATE, b'{"name": "x"}', code=None, headers={"Content-Type": "text/plain"}),
    Case("create-huge-integer", "POST", CREATE, b'{"name": ' + b"1" * 5000 + b"}", code=None),
    Case("create-nan-name", "POST", CREATE, b'{"name": NaN}', names="name"),
    Case("name-number", "POST", CREATE, {**_create(), "name": 5}, names="name"),
    Case("name-trailing-newline", "POST", CREATE, {**_create(), "name": "contract-ok\n"}),
    Case("name-64-chars", "POST", CREATE, {**_create(), "name": "a" * 64}),
    Case("name-10k-chars", "POST", CREATE, {**_create(), "name": "a" * 10_000}, names="name"),
    Case("config-string", "POST", CREATE, {"name": "contract-new", "config": "nope"}, names="config"),
    Case("served-entities-string", "POST", CREATE, {"name": "contract-new", "config": {"served_entities": "abc"}},
         names="config.served_entities"),
    Case("served-entities-ints", "POST", CREATE, {"name": "contract-new", "config": {"served_entities": [1, 2]}},
         names="config.served_entities[0]"),
    Case("served-entities-101", "POST", CREATE, _create(*[_entity(name=f"e{i}") for i in range(101)])),
    Case("entity-name-number", "POST", CREATE, _create(_entity(name=7)), names="config.served_entities[0].name"),
    Case("entity-name-newline", "POST", CREATE, _create(_entity(name="e1\n"))),
    Case("entity-name-64-chars", "POST", CREATE, _create(_entity(name="e" * 64))),
    Case("workload-size-list", "POST", CREATE, _create(_entity(workload_size=["Small"])), names="workload_size"),
    Case("workload-type-number", "POST", CREATE, _create(_entity(workload_type=5)), names="workload_type"),
    Case("scale-to-zero-yes", "POST", CREATE, _create(_entity(scale_to_zero_enabled="yes")),
         names="config.served_entities[0].scale_to_zero_enabled"),
    Case("scale-to-zero-1", "POST", CREATE, _create(_entity(scale_to_zero_enabled=1)), names="scale_to_zero_enabled"),
    Case("max-concurrency-1e6", "POST", CREATE, _create({"entity_name": IRIS, "entity_version": "1",
                                                         "min_provisioned_concurrency": 4,
                                                         "max_provisioned_concurrency": 10**6}),
         names="max_provisioned_concurrency"),
    Case("min-concurrency-negative", "POST", CREATE, _create({"entity_name": IRIS, "entity_version": "1",
                                                              "min_provisioned_concurrency": -4,
                                                              "max_provisioned_concurrency": 8}),
         names="min_provisioned_concurrency"),
    Case("concurrency-string", "POST", CREATE, _create({"entity_name": IRIS, "entity_version": "1",
                                                        "min_provisioned_concurrency": "4",
                                                        "max_provisioned_concurrency": "8"})),
    Case("entity-version-list", "POST", CREATE, _create(_entity(entity_version=["1"])), names="entity_version"),
    Case("entity-version-bool", "POST", CREATE, _create(_entity(entity_version=True)), names="entity_version"),
    Case("entity-name-object", "POST", CREATE, _create(_entity(entity_name={"a": 1})), names="entity_name"),
    Case("env-vars-string", "POST", CREATE, _create(_entity(environment_vars="abc")), names="environment_vars"),
    Case("env-key-equals", "POST", CREATE, _create(_entity(environment_vars={"A=B": "x"})), names="environment_vars"),
    Case("env-key-nul", "POST", CREATE, _create(_entity(environment_vars={"A\x00B": "x"})), names="environment_vars"),
    Case("env-key-digit", "POST", CREATE, _create(_entity(environment_vars={"1A": "x"})), names="environment_vars"),
    Case("env-key-newline", "POST", CREATE, _create(_entity(environment_vars={"A\n": "x"})), names="environment_vars"),
    Case("env-value-number", "POST", CREATE, _create(_entity(environment_vars={"A": 1})), names="environment_vars.A"),
    Case("env-value-nul", "POST", CREATE, _create(_entity(environment_vars={"A": "x\x00y"})),
         names="environment_vars.A"),
    Case("env-value-20k", "POST", CREATE, _create(_entity(environment_vars={"A": "x" * 20_000})),
         names="environment_vars.A"),
    Case("env-vars-101", "POST", CREATE, _create(_entity(environment_vars={f"V{i}": "x" for i in range(101)})),
         names="environment_vars"),
    Case("served-models-string", "POST", CREATE, {"name": "contract-new", "config": {"served_models": "abc"}},
         names="config.served_models"),
    Case("served-models-ints", "POST", CREATE, {"name": "contract-new", "config": {"served_models": [1, 2]}},
         names="config.served_models[0]"),
    Case("served-model-version-object", "POST", CREATE,
         {"name": "contract-new", "config": {"served_models": [{"model_name": IRIS, "model_version": {}}]}},
         names="model_version"),
    Case("traffic-config-string", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "traffic_config": "abc"}}, names="config.traffic_config"),
    Case("routes-string", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "traffic_config": {"routes": "abc"}}}, names="config.traffic_config.routes"),
    Case("routes-ints", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "traffic_config": {"routes": [1]}}}, names="routes[0]"),
    Case("routes-null", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "traffic_config": {"routes": [None]}}}, names="routes[0]"),
    Case("route-percentage-string", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "traffic_config": {"routes": [
            {"served_model_name": "iris-1", "traffic_percentage": "100"}]}}}, names="traffic_percentage"),
    Case("tags-string", "POST", CREATE, _create(tags="abc"), names="tags"),
    Case("tags-ints", "POST", CREATE, _create(tags=[1]), names="tags[0]"),
    Case("tag-key-list", "POST", CREATE, _create(tags=[{"key": ["a"], "value": "b"}]), names="tags[0].key"),
    Case("tag-value-2000", "POST", CREATE, _create(tags=[{"key": "a", "value": "v" * 2000}]), names="tags[0].value"),
    Case("tags-51", "POST", CREATE, _create(tags=[{"key": f"k{i}", "value": "v"} for i in range(51)]), names="tags"),
    Case("route-optimized-yes", "POST", CREATE, _create(route_optimized="yes"), names="route_optimized"),
    Case("rate-limits-string", "POST", CREATE, _create(rate_limits="abc"), names="rate_limits"),
    Case("rate-limit-calls-string", "POST", CREATE, _create(rate_limits=[{"calls": "10"}]), names="calls"),
    Case("ai-gateway-string", "POST", CREATE, _create(ai_gateway="abc"), names="ai_gateway"),
    Case("description-5000", "POST", CREATE, _create(description="d" * 5000), names="description"),
    Case("auto-capture-string", "POST", CREATE, {"name": "contract-new", "config": {
        "served_entities": [_entity()], "auto_capture_config": "abc"}}, names="auto_capture_config"),
    Case("email-notifications-number", "POST", CREATE, _create(email_notifications=5), names="email_notifications"),
    Case("create-2mb-body", "POST", CREATE, _create(description="d" * (2 * MIB)), status=413, code=TOO_LARGE),
    Case("create-4mb-tag-value", "POST", CREATE, _create(tags=[{"key": "k", "value": "v" * (4 * MIB)}]),
         status=413, code=TOO_LARGE),
    Case("create-deep-array-in-config", "POST", CREATE, _create_raw(DEEP), code=MALFORMED),
    Case("create-deep-array-body", "POST", CREATE, DEEP, code=MALFORMED),
    Case("create-deep-object", "POST", CREATE, b'{"a": ' * 1000 + b"1" + b"}" * 1000, code=MALFORMED),
    Case("create-unbalanced-deep", "POST", CREATE, b"[" * 100_000, code=None),
]

UPDATE_CASES = [
    Case("config-not-json", "PUT", CONFIG, b"{not json", code=MALFORMED),
    Case("config-body-list", "PUT", CONFIG, [_entity()], code=MALFORMED),
    Case("config-entities-string", "PUT", CONFIG, {"served_entities": "abc"}, names="served_entities"),
    Case("config-scale-to-zero-yes", "PUT", CONFIG, {"served_entities": [_entity(scale_to_zero_enabled="yes")]},
         names="served_entities[0].scale_to_zero_enabled"),
    Case("config-nested-bad", "PUT", CONFIG, {"config": {"served_entities": 5}}, names="config.served_entities"),
    Case("config-routes-null", "PUT", CONFIG, {"served_entities": [_entity()], "traffic_config": {"routes": [None]}},
         names="traffic_config.routes[0]"),
    Case("config-served-models-ints", "PUT", CONFIG, {"served_models": [1]}, names="served_models[0]"),
    Case("config-env-equals", "PUT", CONFIG, {"served_entities": [_entity(environment_vars={"X=1": "y"})]},
         names="environment_vars"),
    Case("config-deep-array", "PUT", CONFIG, b'{"served_entities": ' + DEEP + b"}", code=MALFORMED),
    Case("config-2mb-body", "PUT", CONFIG, {"served_entities": [_entity()], "pad": "x" * (2 * MIB)},
         status=413, code=TOO_LARGE),
    Case("tags-add-string", "PATCH", TAGS, {"add_tags": "abc"}, names="add_tags"),
    Case("tags-add-ints", "PATCH", TAGS, {"add_tags": [1, 2]}, names="add_tags[0]"),
    Case("tags-add-key-list", "PATCH", TAGS, {"add_tags": [{"key": ["k"], "value": "v"}]}, names="add_tags[0].key"),
    Case("tags-delete-number", "PATCH", TAGS, {"delete_tags": 5}, names="delete_tags"),
    Case("tags-delete-ints", "PATCH", TAGS, {"delete_tags": [1]}, names="delete_tags[0]"),
    Case("tags-add-value-2000", "PATCH", TAGS, {"add_tags": [{"key": "k", "value": "v" * 2000}]},
         names="add_tags[0].value"),
    Case("tags-add-4mb", "PATCH", TAGS, {"add_tags": [{"key": "k", "value": "v" * (4 * MIB)}]},
         status=413, code=TOO_LARGE),
    Case("tags-not-json", "PATCH", TAGS, b"add_tags=x", code=MALFORMED),
    Case("ai-gateway-rate-limits-string", "PUT", AI_GATEWAY, {"rate_limits": "x"}, names="rate_limits"),
    Case("ai-gateway-body-list", "PUT", AI_GATEWAY, [], code=MALFORMED),
    Case("ai-gateway-usage-string", "PUT", AI_GATEWAY, {"usage_tracking_config": "on"},
         names="usage_tracking_config"),
    Case("rate-limits-calls-bool", "PUT", RATE_LIMITS, {"rate_limits": [{"calls": True}]},
         names="rate_limits[0].calls"),
    Case("rate-limits-number", "PUT", RATE_LIMITS, {"rate_limits": 5}, names="rate_limits"),
    Case("rate-limits-21", "PUT", RATE_LIMITS, {"rate_limits": [{"calls": 1}] * 21}, names="rate_limits"),
]

PERMISSION_CASES = [
    Case("acl-string", "PUT", PERMISSIONS, {"access_control_list": "abc"}, names="access_control_list"),
    Case("acl-ints", "PUT", PERMISSIONS, {"access_control_list": [1, 2]}, names="access_control_list[0]"),
    Case("acl-user-number", "PUT", PERMISSIONS,
         {"access_control_list": [{"user_name": 5, "permission_level": "CAN_VIEW"}]}, names="user_name"),
    Case("acl-level-list", "PUT", PERMISSIONS,
         {"access_control_list": [{"user_name": "a@b.c", "permission_level": ["CAN_VIEW"]}]},
         names="permission_level"),
    Case("acl-patch-string", "PATCH", PERMISSIONS, {"access_control_list": "abc"}, names="access_control_list"),
    Case("acl-201-entries", "PATCH", PERMISSIONS, {"access_control_list": [
        {"user_name": f"u{i}@x.y", "permission_level": "CAN_VIEW"} for i in range(201)]},
         names="access_control_list"),
    Case("acl-not-json", "PUT", PERMISSIONS, b"[", code=MALFORMED),
    Case("token-body-list", "POST", TOKENS, [{"application_id": "bob"}], code=MALFORMED),
    Case("token-application-id-number", "POST", TOKENS, {"application_id": 5}, names="application_id"),
    Case("token-comment-list", "POST", TOKENS, {"application_id": "bob", "comment": ["x"]}, names="comment"),
    Case("path-name-300-chars", "GET", CREATE + "/" + "a" * 300, names="name"),
    Case("path-id-300-chars", "GET", PERMISSIONS.format(id="x" * 300), names="endpoint_id"),
    Case("path-entity-300-chars", "GET", "/api/2.0/serving-endpoints/{name}/served-models/" + "e" * 300 + "/logs",
         names="entity"),
    Case("build-logs-version-abc", "GET", BUILD_LOGS + "?config_version=abc", names="config_version"),
    Case("build-logs-version-negative", "GET", BUILD_LOGS + "?config_version=-1", names="config_version"),
    Case("build-logs-version-huge", "GET", BUILD_LOGS + "?config_version=" + "9" * 30, names="config_version"),
]

ROUTING_CASES = [
    Case("unknown-route", "GET", "/api/2.0/nope", status=404, code="ENDPOINT_NOT_FOUND"),
    Case("unknown-subroute", "GET", "/api/2.0/serving-endpoints/{name}/x/y/z", status=404, code="ENDPOINT_NOT_FOUND"),
    Case("unknown-post", "POST", "/api/2.1/serving-endpoints", {"name": "x"}, status=404, code="ENDPOINT_NOT_FOUND"),
    Case("wrong-method-endpoint", "POST", "/api/2.0/serving-endpoints/{name}", {}, status=405,
         code="ENDPOINT_NOT_FOUND"),
    Case("wrong-method-list", "DELETE", CREATE, status=405, code="ENDPOINT_NOT_FOUND"),
    Case("wrong-method-levels", "PUT", PERMISSIONS + "/permissionLevels", {}, status=405, code="ENDPOINT_NOT_FOUND"),
    Case("no-auth-header", "GET", CREATE, status=401, code="UNAUTHENTICATED", auth=None),
    Case("bearer-only", "GET", CREATE, status=401, code="UNAUTHENTICATED", auth="Bearer"),
    Case("wrong-token", "GET", CREATE, status=403, code="PERMISSION_DENIED", auth="Bearer dapi-wrong"),
    Case("basic-auth", "GET", CREATE, status=401, code="UNAUTHENTICATED", auth="Basic x"),
    Case("no-auth-create", "POST", CREATE, _create(), status=401, code="UNAUTHENTICATED", auth=None),
    Case("wrong-token-bad-body", "PUT", CONFIG, {"served_entities": "abc"}, status=403, code="PERMISSION_DENIED",
         auth="Bearer dapi-wrong"),
    Case("no-auth-token-request", "POST", TOKENS, {"application_id": "bob"}, status=401, code="UNAUTHENTICATED",
         auth=None),
]

CASES = CREATE_CASES + UPDATE_CASES + PERMISSION_CASES + ROUTING_CASES


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def target(rest, iris_models) -> dict:
    """A READY endpoint the per-endpoint routes act on (deleted at the end of the module)."""
    name = unique("contract")
    resp = rest.create(name, [entity(IRIS, "1")])
    assert resp.status_code == 200, resp.text
    yield rest.wait_ready(name)
    rest.delete(name)


def _snapshot(rest: Rest, target: dict) -> tuple:
    endpoints = rest.call("GET", CREATE).json()["endpoints"]
    permissions = rest.call("GET", PERMISSIONS.format(id=target["id"])).json()
    return sorted(endpoints, key=lambda e: e["name"]), permissions


def _encode(body) -> tuple[bytes | None, dict]:
    if body is None:
        return None, {}
    if isinstance(body, bytes):
        return body, {"Content-Type": "application/json"}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


def _send(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp, resp.read()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_on_an_open_connection(rest, local_backend, target, case):
    before = _snapshot(rest, target)
    parts = urlsplit(local_backend.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    token_header = {"Authorization": f"Bearer {local_backend.token}"}
    auth = token_header if case.auth is AUTH else ({} if case.auth is None else {"Authorization": case.auth})
    body, headers = _encode(case.body)
    path = case.path.format(name=target["name"], id=target["id"])
    try:
        resp, raw = _send(conn, case.method, path, body, {**headers, **auth, **case.headers})
        sock = conn.sock
        assert sock is not None, "the server closed the connection"
        assert 400 <= resp.status < 500, (resp.status, raw[:500])
        assert resp.status == case.status, (resp.status, raw[:500])
        error = json.loads(raw)
        assert set(error) == {"error_code", "message", "details"}, error
        assert isinstance(error["details"], list) and isinstance(error["message"], str) and error["message"]
        assert "\n" not in error["message"], error["message"]
        if case.code:
            assert error["error_code"] == case.code, error
        if case.names:
            assert case.names in error["message"], error["message"]
        follow, listed = _send(conn, "GET", CREATE, None, token_header)
        assert follow.status == 200 and "endpoints" in json.loads(listed)
        assert conn.sock is sock, "the follow-up needed a new connection"
    finally:
        conn.close()
    assert _snapshot(rest, target) == before


def test_validation_details_name_each_field(rest, target):
    body = {"served_entities": [_entity(scale_to_zero_enabled="yes", workload_size=["x"])]}
    error = rest.call("PUT", CONFIG.format(name=target["name"]), json=body).json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error["message"].startswith("served_entities[0].")
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = {v["field"] for v in detail["field_violations"]}
    assert fields == {"served_entities[0].scale_to_zero_enabled", "served_entities[0].workload_size"}


def test_valid_requests_still_accepted(rest, target):
    """The typed bodies take what clients send: nulls, integers as versions, fields we do not model."""
    name = target["name"]
    tags = rest.call("PATCH", TAGS.format(name=name), json={"add_tags": [{"key": "team", "value": None}],
                                                             "delete_tags": None})
    assert tags.status_code == 200, tags.text
    assert rest.call("PATCH", TAGS.format(name=name), json={"delete_tags": ["team"]}).status_code == 200
    limits = rest.call("PUT", RATE_LIMITS.format(name=name), json={"rate_limits": []})
    assert limits.status_code == 200, limits.text
    logs = rest.call("GET", BUILD_LOGS.format(name=name) + "?config_version=")
    assert logs.status_code == 200, logs.text
    created = rest.call("POST", CREATE, json={"name": "contract-typo\n", "config": {"served_entities": [
        {"entity_name": IRIS, "entity_version": 1, "unmodelled_field": {"kept": True}}]}, "tags": None})
    assert created.status_code == 400 and "letters, digits" in created.json()["message"]


def test_a_bug_answers_a_databricks_500_and_is_contained():
    """Unhandled exceptions answer `INTERNAL_ERROR` and do not reach the server (which would close
    the connection); the error handlers and guards are the backend's own."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from jupyter_serving.local.http.errors import install_error_handlers
    from jupyter_serving.local.http.guard import bounded_bodies, contain_errors

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    with TestClient(contain_errors(bounded_bodies(app)), raise_server_exceptions=True) as client:
        resp = client.get("/boom")
        assert resp.status_code == 500
        assert resp.json() == {"error_code": "INTERNAL_ERROR", "details": [],
                               "message": "Internal error (RuntimeError); see the backend log."}
        assert client.get("/nope").json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_chunked_body_over_the_limit(rest, local_backend, target):
    """Without a Content-Length the limit holds while reading: a 2 MiB chunked body gets 413, unbuffered."""
    before = _snapshot(rest, target)
    parts = urlsplit(local_backend.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    auth = {"Authorization": f"Bearer {local_backend.token}"}
    chunks = [b'{"name": "contract-new", "description": "'] + [b"d" * 65536] * 32 + [b'"}']
    try:
        conn.request("POST", CREATE, body=iter(chunks), encode_chunked=True,
                     headers={**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        error = json.loads(resp.read())
        assert resp.status == 413 and error["error_code"] == "BAD_REQUEST" and error["details"] == []
        sock = conn.sock
        follow, _ = _send(conn, "GET", CREATE, None, auth)
        assert follow.status == 200 and conn.sock is sock is not None
    finally:
        conn.close()
    assert _snapshot(rest, target) == before
