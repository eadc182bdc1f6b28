"""The data plane: traffic split, concurrency limits, rate limits, scale to zero, GPU placement."""
from __future__ import annotations

import collections
import concurrent.futures
import time

import pytest

from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture
def split_endpoint(rest, iris_models):
    """Two versions behind one endpoint, 80/20 (one for each test: one of them moves the traffic)."""
    name = unique("split")
    model, (v1, v2) = iris_models["name"], iris_models["versions"]
    resp = rest.create(name, [entity(model, v1), entity(model, v2)],
                       [{"served_model_name": f"iris-{v1}", "traffic_percentage": 80},
                        {"served_entity_name": f"iris-{v2}", "traffic_percentage": 20}])
    assert resp.status_code == 200, resp.text
    rest.wait_ready(name)
    yield name
    rest.delete(name)


def test_weighted_routing_and_entity_targeting(rest, split_endpoint, iris_models):
    v1, v2 = iris_models["versions"]
    body = {"dataframe_records": iris_models["X"].head(2).to_dict("records")}
    counts = collections.Counter()
    for _ in range(300):
        resp = rest.query(split_endpoint, body)
        assert resp.status_code == 200
        counts[resp.headers["served-model-name"]] += 1
    # 300 draws at p=0.8: mean 240, sd 6.9; ±35 is five standard deviations
    assert abs(counts[f"iris-{v1}"] - 240) <= 35, counts
    assert counts[f"iris-{v1}"] + counts[f"iris-{v2}"] == 300
    for target in (f"iris-{v1}", f"iris-{v2}"):
        resp = rest.query(split_endpoint, body, entity=target)
        assert resp.status_code == 200 and resp.headers["served-model-name"] == target
    missing = rest.query(split_endpoint, body, entity="ghost")
    assert missing.status_code == 404 and "iris-1" in missing.json()["message"]


def test_traffic_only_update_keeps_model_servers(rest, split_endpoint, iris_models, backend_home):
    v1, v2 = iris_models["versions"]
    model = iris_models["name"]
    log = backend_home / "logs" / rest.get(split_endpoint)["id"] / f"iris-{v1}.log"
    starts_before = log.read_text().count("starting scoring server")
    resp = rest.update(split_endpoint, [entity(model, v1), entity(model, v2)],
                       [{"served_model_name": f"iris-{v1}", "traffic_percentage": 0},
                        {"served_model_name": f"iris-{v2}", "traffic_percentage": 100}])
    assert resp.status_code == 200
    doc = rest.wait_ready(split_endpoint)
    assert doc["config"]["traffic_config"]["routes"][1] == {"served_model_name": f"iris-{v2}", "traffic_percentage": 100}
    body = {"dataframe_records": iris_models["X"].head(1).to_dict("records")}
    assert {rest.query(split_endpoint, body).headers["served-model-name"] for _ in range(20)} == {f"iris-{v2}"}
    assert log.read_text().count("starting scoring server") == starts_before


def _fire(rest: Rest, name: str, body: dict, count: int) -> list[tuple[int, float]]:
    def one(_):
        started = time.monotonic()
        resp = rest_session_query(rest, name, body)
        return resp.status_code, time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def rest_session_query(rest: Rest, name: str, body: dict):
    # one connection per thread: requests.Session is not thread-safe for concurrent use
    import requests

    return requests.post(f"{rest.url}/serving-endpoints/{name}/invocations", json=body,
                         headers={"Authorization": rest.session.headers["Authorization"]}, timeout=60)


def test_concurrency_overflow_gives_429_not_errors(rest, sleep_model):
    name = unique("busy")
    assert rest.create(name, [entity(sleep_model["name"], sleep_model["version"])]).status_code == 200
    try:
        rest.wait_ready(name)
        body = {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": 1500}}
        results = _fire(rest, name, body, 12)
        statuses = collections.Counter(status for status, _ in results)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[200] >= 4 - 1 and statuses[200] <= 4, statuses  # Small = 4 concurrent requests
        assert statuses[429] >= 8
        assert all(elapsed < 1.0 for status, elapsed in results if status == 429)  # refused at once, not queued
        throttled = rest_session_query(rest, name, {"dataframe_records": [{"x": 1.0}], "params": {"sleep_ms": 0}})
        assert throttled.status_code == 200 and throttled.json()["predictions"] == [{"x": 2.0}]
        metrics = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/metrics").text
        assert 'status="429"' in metrics
    finally:
        rest.delete(name)


def test_rate_limit_scale_to_zero_and_gpu_message(rest, iris_models, local_backend):
    name = unique("s2z")
    model, v1 = iris_models["name"], iris_models["versions"][0]
    resp = rest.create(name, [entity(model, v1, scale_to_zero_enabled=True, workload_type="GPU_MEDIUM")],
                       rate_limits=[{"calls": 3, "key": "user", "renewal_period": "minute"}])
    assert resp.status_code == 200, resp.text
    try:
        doc = rest.wait_ready(name)
        message = doc["config"]["served_entities"][0]["state"]["deployment_state_message"]
        assert "GPU_MEDIUM" in message and "runs on CPU" in message
        body = {"dataframe_records": iris_models["X"].head(1).to_dict("records")}
        # the backend fixture scales to zero after 3 idle seconds
        poll(lambda: "Scaled to zero" in rest.get(name)["config"]["served_entities"][0]["state"][
            "deployment_state_message"], 30, 0.2, "scale to zero")
        cold = rest.query(name, body)
        assert cold.status_code == 200, cold.text  # the cold start succeeds
        assert rest.get(name)["config"]["served_entities"][0]["state"]["deployment"] == "DEPLOYMENT_READY"
        assert [rest.query(name, body).status_code for _ in range(3)] == [200, 200, 429]
        limited = rest.query(name, body).json()
        assert limited["error_code"] == "REQUEST_LIMIT_EXCEEDED" and "3 calls per minute" in limited["message"]
    finally:
        rest.delete(name)


def test_chat_bodies_and_openapi_of_a_chat_model(rest, chat_model, local_backend):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

    name = unique("chat")
    assert rest.create(name, [entity(chat_model["name"], chat_model["version"])]).status_code == 200
    try:
        rest.wait_ready(name)
        resp = rest.query(name, {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 2})
        assert resp.status_code == 200, resp.text
        choice = resp.json()["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": "echo: hello"}
        assert choice["finish_reason"] == "stop"
        w = WorkspaceClient(host=local_backend.url, token=local_backend.token)
        answer = w.serving_endpoints.query(name, messages=[ChatMessage(role=ChatMessageRole.USER, content="hi")])
        assert answer.choices[0].message.content == "echo: hi"
        spec = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/openapi").json()
        body = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert any("messages" in alt["properties"] for alt in body["oneOf"])
    finally:
        rest.delete(name)
