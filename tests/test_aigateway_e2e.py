"""The AI Gateway end to end, through queries: rate limits, guardrails, usage and inference-table rows."""
from __future__ import annotations

import pytest

from tests.backend_helpers import Rest, entity
from tests.conftest import unique

AI_GATEWAY = "/api/2.0/serving-endpoints/{name}/ai-gateway"
USAGE = "/api/2.0/serving-endpoints/{name}/usage"
TABLE = "/api/2.0/serving-endpoints/{name}/inference-table"
RECORDS = {"usage_tracking_config": {"enabled": True},
           "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "e2e",
                                      "table_name_prefix": "chat"}}


def ask(text: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def chat(rest, chat_model) -> str:
    """A READY endpoint of the echo chat model (answers `echo: <last message>`)."""
    name = unique("aigw-e2e")
    assert rest.create(name, [entity(chat_model["name"], chat_model["version"])]).status_code == 200
    try:
        rest.wait_ready(name)
        yield name
    finally:
        rest.delete(name)


def gateway(rest: Rest, name: str, body: dict) -> None:
    resp = rest.call("PUT", AI_GATEWAY.format(name=name), json=body)
    assert resp.status_code == 200, resp.text


def rows(rest: Rest, path: str, name: str, since_ms: int) -> list[dict]:
    resp = rest.call("GET", path.format(name=name), params={"since_ms": since_ms})
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


def now_ms(rest: Rest, name: str) -> int:
    return rest.get(name)["last_updated_timestamp"]


def test_a_query_leaves_a_usage_row_and_an_inference_table_row(rest, chat, local_backend):
    gateway(rest, chat, RECORDS)
    since = now_ms(rest, chat)
    resp = rest.query(chat, ask("hello records", client_request_id="e2e-1", usage_context={"team": "qa"}))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: hello records"
    (usage,) = [r for r in rows(rest, USAGE, chat, since) if r["client_request_id"] == "e2e-1"]
    assert usage["status_code"] == 200 and usage["usage_context"] == {"team": "qa"}
    assert usage["requester"] == rest.get(chat)["creator"]
    assert usage["input_token_count"] > 0 and usage["output_token_count"] > 0
    (logged,) = [r for r in rows(rest, TABLE, chat, since) if r["client_request_id"] == "e2e-1"]
    assert logged["databricks_request_id"] == usage["databricks_request_id"]
    assert "client_request_id" not in logged["request"] and "hello records" in logged["request"]
    assert "echo: hello records" in logged["response"] and logged["logging_error_codes"] == []


def test_an_invalid_keyword_is_blocked_as_databricks_blocks_it(rest, chat):
    gateway(rest, chat, {**RECORDS, "guardrails": {"input": {"invalid_keywords": ["SuperSecretProject"]}}})
    since = now_ms(rest, chat)
    resp = rest.query(chat, ask("tell me about the supersecretproject", client_request_id="e2e-blocked"))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["finishReason"] == "input_guardrail_triggered" and body["error_code"] == "BAD_REQUEST"
    assert body["input_guardrail"][0]["invalid_keywords"] is True
    (logged,) = [r for r in rows(rest, TABLE, chat, since) if r["client_request_id"] == "e2e-blocked"]
    assert logged["status_code"] == 400


def test_pii_is_masked_before_the_model_sees_it(rest, chat):
    gateway(rest, chat, {"guardrails": {"input": {"pii": {"behavior": "MASK"}}}})
    resp = rest.query(chat, ask("write to jane@example.com"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "echo: write to <EMAIL_ADDRESS>"


def test_an_output_guardrail_blocks_the_answer(rest, chat):
    gateway(rest, chat, {"guardrails": {"output": {"invalid_keywords": ["banana"]}}})
    resp = rest.query(chat, ask("say banana"))
    assert resp.status_code == 400 and resp.json()["finishReason"] == "output_guardrail_triggered", resp.text
    assert rest.query(chat, ask("say apple")).status_code == 200


def test_a_token_limit_refuses_once_the_window_is_spent(rest, chat):
    gateway(rest, chat, {"rate_limits": [{"tokens": 5, "key": "user", "renewal_period": "minute"}]})
    assert rest.query(chat, ask("one two three four five six")).status_code == 200  # crosses the limit
    resp = rest.query(chat, ask("again"))
    assert resp.status_code == 429 and resp.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED", resp.text
    assert "5 tokens per minute" in resp.json()["message"] and int(resp.headers["Retry-After"]) >= 1


def test_a_group_calls_limit_counts_the_whole_group(rest, chat, local_backend):
    gateway(rest, chat, {"rate_limits": [{"calls": 1, "key": "user_group", "principal": "admins"}]})
    assert rest.query(chat, ask("first")).status_code == 200
    resp = rest.query(chat, ask("second"))
    assert resp.status_code == 429 and "group 'admins'" in resp.json()["message"], resp.text
    gateway(rest, chat, {})
    assert rest.query(chat, ask("third")).status_code == 200
