"""Every configuration rule is refused with Databricks' error body and code, and changes nothing."""
from __future__ import annotations

import os
import stat

import pytest
import requests

from tests.backend_helpers import Rest, entity
from tests.conftest import unique

IRIS = "main.ml.iris"


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


def _e(version="1", **fields):
    return entity(IRIS, version, **fields)


CREATE_CASES = [
    ("bad name", "bad name!", [_e()], None, 400, "INVALID_PARAMETER_VALUE", "letters, digits"),
    ("reserved prefix", "databricks-mine", [_e()], None, 400, "INVALID_PARAMETER_VALUE", "reserved"),
    ("no entities", None, [], None, 400, "INVALID_PARAMETER_VALUE", "serves nothing"),
    ("eleven entities", None, [_e(name=f"e{i}") for i in range(11)], None, 400, "INVALID_PARAMETER_VALUE",
     "at most 10"),
    ("duplicate entity names", None, [_e(name="a"), _e(version="2", name="a")],
     [{"served_model_name": "a", "traffic_percentage": 100}], 400, "INVALID_PARAMETER_VALUE", "used twice"),
    ("default names collide", None, [_e(), _e()], None, 400, "INVALID_PARAMETER_VALUE", "iris-1' is used twice"),
    ("traffic sums to 90", None, [_e(), _e(version="2")],
     [{"served_model_name": "iris-1", "traffic_percentage": 40}, {"served_model_name": "iris-2", "traffic_percentage": 50}],
     400, "INVALID_PARAMETER_VALUE", "sum to 90"),
    ("route to unknown entity", None, [_e()], [{"served_model_name": "ghost", "traffic_percentage": 100}],
     400, "INVALID_PARAMETER_VALUE", "'ghost'"),
    ("two entities no routes", None, [_e(), _e(version="2")], None, 400, "INVALID_PARAMETER_VALUE", "must split"),
    ("concurrency not multiple of 4", None,
     [{"entity_name": IRIS, "entity_version": "1", "min_provisioned_concurrency": 4, "max_provisioned_concurrency": 6}],
     None, 400, "INVALID_PARAMETER_VALUE", "multiple of 4"),
    ("size mixed with concurrency", None,
     [_e(min_provisioned_concurrency=4, max_provisioned_concurrency=8)], None, 400, "INVALID_PARAMETER_VALUE",
     "cannot be combined"),
    ("unknown workload size", None, [_e(workload_size="Huge")], None, 400, "INVALID_PARAMETER_VALUE", "Huge"),
    ("gpu type not on this cloud", None, [_e(workload_type="GPU_LARGE_2")], None, 400, "INVALID_PARAMETER_VALUE",
     "not offered on AWS"),
    ("unknown workload type", None, [_e(workload_type="TPU_V5")], None, 400, "INVALID_PARAMETER_VALUE",
     "unknown workload type"),
    ("unknown model", None, [entity("main.ml.nope", "1")], None, 404, "RESOURCE_DOES_NOT_EXIST", "does not exist"),
    ("unknown version", None, [_e(version="42")], None, 404, "RESOURCE_DOES_NOT_EXIST", "no version 42"),
    ("missing version", None, [{"entity_name": IRIS}], None, 400, "INVALID_PARAMETER_VALUE", "no entity_version"),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c[0] for c in CREATE_CASES])
def test_create_refusals(rest, iris_models, case):
    _, name, entities, routes, status, code, text = case
    name = name or unique("rule")
    before = rest.call("GET", "/api/2.0/serving-endpoints").json()["endpoints"]
    resp = rest.create(name, entities, routes)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code and text in body["message"], body
    assert rest.call("GET", "/api/2.0/serving-endpoints").json()["endpoints"] == before


def test_duplicate_name_and_conflicting_update(rest, iris_models):
    name = unique("rules")
    assert rest.create(name, [_e()]).status_code == 200
    try:
        dup = rest.create(name, [_e()])
        assert dup.status_code == 409 and dup.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        # while the creation is in progress, a config update is refused and changes nothing
        during = rest.update(name, [_e(version="2")])
        assert during.status_code == 409 and during.json()["error_code"] == "RESOURCE_CONFLICT", during.text
        assert "in progress" in during.json()["message"]
        stop = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:stop")
        assert stop.status_code == 409
        doc = rest.wait_ready(name)
        assert [e["entity_version"] for e in doc["config"]["served_entities"]] == ["1"]
        bad = rest.update(name, [_e(), _e(version="2")], [{"served_model_name": "iris-1", "traffic_percentage": 101}])
        assert bad.status_code == 400 and "0 to 100" in bad.json()["message"]
        assert rest.get(name)["config"]["config_version"] == 1
        start = rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:start")
        assert start.status_code == 400 and start.json()["error_code"] == "INVALID_STATE"
    finally:
        rest.delete(name)


def test_unknown_endpoint_everywhere(rest, local_backend):
    for method, path in [("GET", "/api/2.0/serving-endpoints/ghost"),
                         ("DELETE", "/api/2.0/serving-endpoints/ghost"),
                         ("PUT", "/api/2.0/serving-endpoints/ghost/config"),
                         ("POST", "/api/2.0/serving-endpoints/ghost/config:stop"),
                         ("GET", "/api/2.0/serving-endpoints/ghost/metrics"),
                         ("POST", "/serving-endpoints/ghost/invocations")]:
        resp = rest.call(method, path, json={})
        assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", (method, path)


def test_auth_and_token_file(local_backend, backend_home):
    url = local_backend.url
    assert requests.get(url + "/.well-known/databricks-config", timeout=10).json()["cloud"] == "AWS"
    missing = requests.get(url + "/api/2.0/serving-endpoints", timeout=10)
    assert missing.status_code == 401 and missing.json()["error_code"] == "UNAUTHENTICATED"
    wrong = requests.get(url + "/api/2.0/serving-endpoints", headers={"Authorization": "Bearer dapinope"}, timeout=10)
    assert wrong.status_code == 403
    invoke = requests.post(url + "/serving-endpoints/x/invocations", json={}, timeout=10)
    assert invoke.status_code == 401
    mode = stat.S_IMODE(os.stat(backend_home / "token").st_mode)
    assert mode == 0o600
    assert local_backend.url.startswith("http://127.0.0.1:")
    logs = "".join(p.read_text(errors="replace") for p in (backend_home / "logs").rglob("*.log"))
    assert local_backend.token not in logs


def test_malformed_bodies(rest, local_backend):
    resp = rest.call("POST", "/api/2.0/serving-endpoints", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error_code"] == "MALFORMED_REQUEST"
    resp = rest.call("POST", "/api/2.0/serving-endpoints", json={"name": unique("x"), "config": "nope"})
    assert resp.status_code == 400 and "JSON object" in resp.json()["message"]
