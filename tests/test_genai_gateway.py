"""The AI Gateway on GenAI traffic: records of every request (also concurrent and streamed, with the
tokens the stream carried), fallbacks to the next served entity, and a streamed query's slot and
records kept until the stream ends."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.backend_helpers import Rest, entity
from tests.conftest import poll, unique
from tests.serving_shared import saturated

AI_GATEWAY = "/api/2.0/serving-endpoints/{name}/ai-gateway"
USAGE = "/api/2.0/serving-endpoints/{name}/usage"
TABLE = "/api/2.0/serving-endpoints/{name}/inference-table"
RECORDS = {"usage_tracking_config": {"enabled": True},
           "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "genai",
                                      "table_name_prefix": "chat"}}


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


def _put_gateway(rest: Rest, name: str, body: dict) -> None:
    resp = rest.call("PUT", AI_GATEWAY.format(name=name), json=body)
    assert resp.status_code == 200, resp.text


def _rows(rest: Rest, path: str, name: str) -> list[dict]:
    resp = rest.call("GET", path.format(name=name), params={"limit": 1000})
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


@pytest.fixture()
def recorded_chat(rest, delayed_chat_model):
    """A fresh endpoint of the paced chat model with usage tracking and an inference table."""
    name = unique("grec")
    assert rest.create(name, [entity(delayed_chat_model["name"], delayed_chat_model["version"])]).status_code == 200
    try:
        rest.wait_ready(name, timeout=240)
        _put_gateway(rest, name, RECORDS)
        yield name
    finally:
        rest.delete(name)


def test_every_concurrent_request_gets_its_inference_table_and_usage_row(rest, recorded_chat):
    ids = [f"req-{i}" for i in range(24)]

    def ask(request_id: str) -> int:
        body = {"messages": [{"role": "user", "content": request_id}], "client_request_id": request_id,
                "custom_inputs": {"tokens": 3}}
        for _ in range(50):  # 4 concurrent slots and 8 callers: a 429 is retried, as a client would
            resp = requests.post(f"{rest.url}/serving-endpoints/{recorded_chat}/invocations", json=body,
                                 headers=rest.session.headers, timeout=60)
            if resp.status_code != 429:
                return resp.status_code
        return 429

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(ask, ids))
    assert statuses == [200] * len(ids)
    logged = [r for r in _rows(rest, TABLE, recorded_chat) if r["status_code"] == 200]
    assert sorted(r["client_request_id"] for r in logged) == sorted(ids)
    assert len({r["databricks_request_id"] for r in logged}) == len(ids)
    for row in logged:
        assert json.loads(row["request"])["messages"][0]["content"] == row["client_request_id"]
        assert json.loads(row["response"])["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
    usage = [r for r in _rows(rest, USAGE, recorded_chat) if r["status_code"] == 200]
    assert sorted(r["client_request_id"] for r in usage) == sorted(ids)
    assert {r["output_token_count"] for r in usage} == {3}  # the model's own usage counts


def test_a_stream_is_recorded_with_its_tokens_when_it_ends(rest, recorded_chat):
    body = {"messages": [{"role": "user", "content": "stream me"}], "stream": True, "client_request_id": "s-1",
            "custom_inputs": {"tokens": 5, "itl_ms": 20}}
    with requests.post(f"{rest.url}/serving-endpoints/{recorded_chat}/invocations", json=body, stream=True,
                       headers=rest.session.headers, timeout=60) as resp:
        assert resp.status_code == 200
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in resp.iter_lines() if line and line != b"data: [DONE]")
    assert text == "tok0 tok1 tok2 tok3 tok4"
    (usage,) = poll(lambda: [r for r in _rows(rest, USAGE, recorded_chat) if r["client_request_id"] == "s-1"],
                    10, 0.1, "the stream's usage row")
    assert usage["output_token_count"] == 5 and usage["request_streaming"] is True
    (row,) = [r for r in _rows(rest, TABLE, recorded_chat) if r["client_request_id"] == "s-1"]
    chunks = json.loads(row["response"])["chunks"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text


def _two_entities(rest: Rest, sleep_model: dict) -> str:
    """An endpoint whose traffic all goes to `busy`, with a `spare` entity beside it (0 %)."""
    name = unique("gfall")
    entities = [entity(sleep_model["name"], sleep_model["version"], name="busy"),
                entity(sleep_model["name"], sleep_model["version"], name="spare")]
    routes = [{"served_model_name": "busy", "traffic_percentage": 100},
              {"served_model_name": "spare", "traffic_percentage": 0}]
    assert rest.create(name, entities, routes).status_code == 200
    rest.wait_ready(name, timeout=240)
    return name


QUICK = {"dataframe_records": [{"x": 2.0}], "params": {"sleep_ms": 1.0}}


def test_fallback_serves_from_the_next_entity_when_the_first_is_saturated(rest, sleep_model, local_backend):
    """`busy` takes 4 at a time; while slow queries keep it full a query would get 429 — with fallbacks
    enabled the next served entity answers instead."""
    name = _two_entities(rest, sleep_model)
    try:
        with saturated(local_backend, name, workers=4, sleep_ms=1500):
            poll(lambda: rest.query(name, QUICK).status_code == 429, 10, 0.02, "the busy entity to be full")
            _put_gateway(rest, name, {"fallback_config": {"enabled": True}})
            answers = [rest.query(name, QUICK) for _ in range(10)]
        assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
        assert "spare" in {a.headers["served-model-name"] for a in answers}
        assert rest.query(name, QUICK).headers["served-model-name"] == "busy"  # free again: the first entity
    finally:
        rest.delete(name)


def test_without_fallbacks_the_saturated_entity_refuses(rest, sleep_model, local_backend):
    name = _two_entities(rest, sleep_model)
    try:
        with saturated(local_backend, name, workers=4, sleep_ms=1500):
            def refused():  # the body (a Response is falsy when not ok)
                resp = rest.query(name, QUICK)
                return resp.json() if resp.status_code == 429 else None

            assert poll(refused, 10, 0.02, "a 429 from the busy entity")["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        rest.delete(name)


def test_provisioned_throughput_refuses_past_its_token_budget(rest, delayed_chat_model):
    """1 model unit = 100 tokens/s, doubled by burst scaling: the budget holds 200 tokens. A query that
    spends 1000 tokens empties it; the next is refused (429, Retry-After) until it has refilled."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import PtEndpointCoreConfig, PtServedModel

    w = WorkspaceClient()
    name = unique("gpt")
    w.serving_endpoints.create_provisioned_throughput_endpoint(name, config=PtEndpointCoreConfig(served_entities=[
        PtServedModel(entity_name=delayed_chat_model["name"], entity_version=delayed_chat_model["version"],
                      provisioned_model_units=1, name="chat")]))
    try:
        rest.wait_ready(name, timeout=240)
        assert rest.get(name)["config"]["served_entities"][0]["provisioned_model_units"] == 1
        big = {"messages": [{"role": "user", "content": "hi"}], "custom_inputs": {"tokens": 1000}}
        first = rest.query(name, big)
        assert first.status_code == 200, first.text
        assert first.json()["usage"]["completion_tokens"] == 1000
        refused = rest.query(name, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert "provisioned throughput" in refused.json()["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        small = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert poll(lambda: rest.query(name, small).status_code == 200, 30, 0.5, "the budget to refill")
        w.serving_endpoints.update_provisioned_throughput_endpoint_config(name, config=PtEndpointCoreConfig(
            served_entities=[PtServedModel(entity_name=delayed_chat_model["name"],
                                           entity_version=delayed_chat_model["version"],
                                           provisioned_model_units=100, name="chat")]))
        rest.wait_ready(name, timeout=240)
        # 100 units: 20000 tokens/s. Two big queries in a row pass (once the bucket holds ~1000 tokens, within
        # a second); with 1 unit (a 200-token bucket) the second of any such pair was refused.
        assert poll(lambda: all(rest.query(name, big).status_code == 200 for _ in range(2)), 10, 0.2,
                    "two 1000-token queries in a row to pass")
    finally:
        rest.delete(name)
