"""The AI Gateway policy driven directly (no backend): rate limits by calls and tokens per key, the
provisioned-throughput token bucket, guardrails with the real PII detector, and the records it keeps."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import uuid

import pytest

from jupyter_serving.core.rules import RuleViolation, validate_ai_gateway, validate_rate_limits
from jupyter_serving.local.aigateway import AiGatewayError, AiGatewayPolicy, pii
from jupyter_serving.local.aigateway.records import MAX_LOGGED_BYTES
from jupyter_serving.local.permissions import Caller

ALICE, BOB = Caller("alice@example.com", False), Caller("bob@example.com", False)
ADMIN = Caller("admin@localhost", True)
SP = Caller("6f1c2a3e-1b2c-4d5e-8f90-123456789abc", False)
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def policy(tmp_path, clock):
    return AiGatewayPolicy(tmp_path / "ai_gateway.db", clock=clock)


def endpoint(ai_gateway=None, rate_limits=None, name=None) -> dict:
    return {"name": name or f"ep-{uuid.uuid4().hex[:6]}", "id": uuid.uuid4().hex, "ai_gateway": ai_gateway,
            "rate_limits": rate_limits or []}


def query(policy, doc, caller=ALICE, body=CHAT):
    return policy.admit(doc, caller, None, json.dumps(body).encode())


def refused(policy, doc, caller=ALICE, body=CHAT) -> AiGatewayError:
    with pytest.raises(AiGatewayError) as info:
        query(policy, doc, caller, body)
    return info.value


def run(coro):
    return asyncio.run(coro)


# the hot path ------------------------------------------------------------------------------------
def test_an_endpoint_without_ai_gateway_passes_its_body_through_untouched(policy):
    doc, raw = endpoint(), b'{"dataframe_records": [{"x": 1}], "client_request_id": "c1"}'
    admission = policy.admit(doc, ALICE, None, raw)
    assert admission.body is raw and admission.plan is None and admission.client_request_id is None
    policy.settle(admission, doc, "m-1", 200, b'{"predictions": [1]}', None, None)
    assert policy.check_output(admission, {"predictions": [1]}) == {"predictions": [1]}


# rate limits by calls ----------------------------------------------------------------------------
def test_endpoint_calls_limit_refuses_the_call_one_too_many(policy):
    doc = endpoint({"rate_limits": [{"calls": 2, "key": "endpoint", "renewal_period": "minute"}]})
    query(policy, doc, ALICE)
    query(policy, doc, BOB)
    error = refused(policy, doc, ALICE)
    assert (error.status, error.error_code) == (429, "REQUEST_LIMIT_EXCEEDED")
    assert "2 calls per minute" in error.message and "the endpoint" in error.message
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert error.body()["details"] == []


def test_user_limits_count_each_user_and_a_named_user_overrides_the_default(policy):
    doc = endpoint({"rate_limits": [{"calls": 1, "key": "user"},
                                    {"calls": 3, "key": "user", "principal": BOB.user}]})
    query(policy, doc, ALICE)
    assert "user 'alice@example.com'" in refused(policy, doc, ALICE).message
    for _ in range(3):
        query(policy, doc, BOB)
    assert "3 calls per minute" in refused(policy, doc, BOB).message


def test_a_group_limit_is_shared_by_its_members_and_admins_are_in_admins(policy):
    doc = endpoint({"rate_limits": [{"calls": 2, "key": "user_group", "principal": "users"},
                                    {"calls": 1, "key": "user_group", "principal": "admins"}]})
    query(policy, doc, ALICE)
    query(policy, doc, BOB)
    assert "group 'users'" in refused(policy, doc, ADMIN).message  # the admin is in users too


def test_service_principal_limits_bind_service_principals_only(policy):
    doc = endpoint({"rate_limits": [{"calls": 1, "key": "service_principal"}]})
    query(policy, doc, SP)
    assert "service principal" in refused(policy, doc, SP).message
    for _ in range(3):
        query(policy, doc, ALICE)  # a user: no service principal limit applies


def test_legacy_endpoint_rate_limits_are_enforced_too(policy):
    doc = endpoint(rate_limits=[{"calls": 3, "key": "user", "renewal_period": "minute"}])
    for _ in range(3):
        query(policy, doc)
    assert "3 calls per minute" in refused(policy, doc).message


def test_the_window_slides_a_call_leaves_it_after_a_minute(policy, clock):
    doc = endpoint({"rate_limits": [{"calls": 2}]})
    query(policy, doc)
    clock.now += 30
    query(policy, doc)
    clock.now += 29.5
    refused(policy, doc)
    clock.now += 1  # the first call is 60.5 s old: out of the window, the second is still in
    query(policy, doc)
    refused(policy, doc)


def test_a_refused_call_counts_against_no_window(policy):
    doc = endpoint({"rate_limits": [{"calls": 1, "key": "user"}, {"calls": 2, "key": "endpoint"}]})
    query(policy, doc, ALICE)
    refused(policy, doc, ALICE)
    refused(policy, doc, ALICE)
    query(policy, doc, BOB)  # the endpoint window counted alice once, not three times


def test_forget_resets_an_endpoints_windows(policy):
    doc = endpoint({"rate_limits": [{"calls": 1}]})
    query(policy, doc)
    refused(policy, doc)
    policy.forget(doc["name"])
    query(policy, doc)


# rate limits by tokens ---------------------------------------------------------------------------
def test_tokens_are_charged_after_the_answer_and_refuse_once_at_the_limit(policy, clock):
    doc = endpoint({"rate_limits": [{"tokens": 100, "key": "user"}]})
    first = query(policy, doc)
    second = query(policy, doc)  # admitted: nothing is charged before an answer
    policy.settle(first, doc, "m", 200, None, 60, 30)
    third = query(policy, doc)  # 90 < 100
    policy.settle(second, doc, "m", 200, None, 5, 5)
    error = refused(policy, doc)  # 100: at the limit
    assert "100 tokens per minute" in error.message
    query(policy, doc, BOB)  # bob has his own window
    policy.settle(third, doc, "m", 200, None, 1, 1)
    clock.now += 61
    query(policy, doc)


def test_token_counts_are_estimated_when_the_model_reports_none(policy):
    doc = endpoint({"rate_limits": [{"tokens": 10}]})
    admission = query(policy, doc, body={"messages": [{"role": "user", "content": "one two three four five"}]})
    assert admission.input_tokens == 5
    answer = json.dumps({"choices": [{"message": {"content": "six seven eight nine ten"}}]}).encode()
    policy.settle(admission, doc, "m", 200, answer, None, None)
    refused(policy, doc)


def test_a_failed_query_charges_only_what_the_model_reported(policy):
    doc = endpoint({"rate_limits": [{"tokens": 5}]})
    policy.settle(query(policy, doc), doc, "m", 500, b'{"error_code": "INTERNAL_ERROR"}', None, None)
    query(policy, doc)


# provisioned throughput --------------------------------------------------------------------------
def test_the_token_bucket_refuses_when_empty_and_refills(policy, clock):
    doc = endpoint()
    spec = {"name": "pt", "provisioned_model_units": 1, "burst_scaling_enabled": False}  # 100 tokens/s
    policy.entity_gate(doc, spec)
    admission = query(policy, doc)
    policy.settle(admission, doc, "pt", 200, None, 200, 50)  # 250 spent: the bucket is at -150
    with pytest.raises(AiGatewayError) as info:
        policy.entity_gate(doc, spec)
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "2"
    assert "provisioned throughput" in info.value.message
    clock.now += 1.0
    with pytest.raises(AiGatewayError):
        policy.entity_gate(doc, spec)  # -50
    clock.now += 0.6
    policy.entity_gate(doc, spec)  # +10


def test_burst_scaling_doubles_the_throughput(policy, clock):
    doc = endpoint()
    spec = {"name": "pt", "provisioned_model_units": 1, "burst_scaling_enabled": True}  # 200 tokens/s
    policy.entity_gate(doc, spec)
    policy.settle(query(policy, doc), doc, "pt", 200, None, 250, 0)
    with pytest.raises(AiGatewayError):
        policy.entity_gate(doc, spec)
    clock.now += 0.3
    policy.entity_gate(doc, spec)  # -50 + 60
    policy.entity_gate(doc, {"name": "other", "workload_size": "Small"})  # not provisioned: no bucket


# guardrails --------------------------------------------------------------------------------------
def guarded(**sides) -> dict:
    return endpoint({"guardrails": sides})


def test_invalid_keywords_block_whole_words_case_insensitively(policy):
    doc = guarded(input={"invalid_keywords": ["password", "SuperSecretProject"]})
    error = refused(policy, doc, body={"messages": [{"role": "user", "content": "my PASSWORD please"}]})
    assert (error.status, error.error_code) == (400, "BAD_REQUEST")
    body = error.body()
    assert body["finishReason"] == "input_guardrail_triggered"
    assert body["input_guardrail"] == [{"flagged": False, "categories": None, "category_scores": None,
                                        "pii_detection": None, "anonymized_input": None,
                                        "invalid_keywords": True, "off_topic": None}]
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    assert "invalid_keywords" in body["message"]
    query(policy, doc, body={"messages": [{"role": "user", "content": "passwords are words"}]})
    refused(policy, doc, body={"prompt": "about the supersecretproject"})


def test_pii_mask_forwards_the_masked_query(policy):
    doc = guarded(input={"pii": {"behavior": "MASK"}})
    body = {"messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Mail slee@fictional-corp.com or call (555) 123-4567."}],
            "max_tokens": 5}
    admission = query(policy, doc, body=body)
    forwarded = json.loads(admission.body)
    assert forwarded["messages"][1]["content"] == "Mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>."
    assert forwarded["messages"][0]["content"] == "Be brief." and forwarded["max_tokens"] == 5
    assert admission.request == forwarded
    clean = query(policy, doc, body={"messages": [{"role": "user", "content": "nothing personal"}]})
    assert json.loads(clean.body) == {"messages": [{"role": "user", "content": "nothing personal"}]}


def test_pii_block_refuses_and_shows_the_anonymized_input(policy):
    doc = guarded(input={"pii": {"behavior": "BLOCK"}, "invalid_keywords": ["secret"]})
    error = refused(policy, doc, body={"messages": [{"role": "user", "content": "SSN 123-45-6789"}]})
    verdict = error.body()["input_guardrail"][0]
    assert verdict["pii_detection"] is True and verdict["invalid_keywords"] is False
    assert verdict["anonymized_input"] == [{"role": "user", "content": "SSN <US_SSN>"}]
    query(policy, doc, body={"messages": [{"role": "user", "content": "SSN 000-12-3456 is not one"}]})


def test_pii_in_tabular_queries_is_masked_in_string_values_only(policy):
    doc = guarded(input={"pii": {"behavior": "MASK"}})
    body = {"dataframe_records": [{"note": "card 4111 1111 1111 1111", "amount": 4111111111111111}]}
    forwarded = json.loads(query(policy, doc, body=body).body)
    assert forwarded == {"dataframe_records": [{"note": "card <CREDIT_CARD>", "amount": 4111111111111111}]}


def test_valid_topics_is_a_lexical_check_of_the_user_messages(policy):
    doc = guarded(input={"valid_topics": ["machine learning", "databricks"]})
    query(policy, doc, body={"messages": [{"role": "user", "content": "How do Databricks endpoints scale?"}]})
    query(policy, doc, body={"messages": [{"role": "user", "content": "Which learning rate?"}]})
    error = refused(policy, doc, body={"messages": [{"role": "system", "content": "You know databricks."},
                                                    {"role": "user", "content": "Best pizza in town?"}]})
    assert error.body()["input_guardrail"][0]["off_topic"] is True
    assert "off_topic" in error.message


def test_output_guardrails_mask_and_block_answers(policy):
    doc = guarded(output={"pii": {"behavior": "MASK"}, "invalid_keywords": ["forbidden"]})
    admission = query(policy, doc)
    answer = {"choices": [{"message": {"role": "assistant", "content": "write to a@b.io"}}], "object": "x"}
    masked = policy.check_output(admission, answer)
    assert masked["choices"][0]["message"]["content"] == "write to <EMAIL_ADDRESS>"
    assert answer["choices"][0]["message"]["content"] == "write to a@b.io"  # the original is left alone
    with pytest.raises(AiGatewayError) as info:
        policy.check_output(admission, {"choices": [{"message": {"content": "a FORBIDDEN word"}}]})
    body = info.value.body()
    assert info.value.status == 400 and body["finishReason"] == "output_guardrail_triggered"
    assert body["output_guardrail"][0]["invalid_keywords"] is True


@pytest.mark.parametrize("text, masked", [
    ("jane.doe+x@mail.example.org", "<EMAIL_ADDRESS>"),
    ("4111-1111-1111-1111", "<CREDIT_CARD>"),
    ("4111-1111-1111-1112", "4111-1111-1111-1112"),  # fails Luhn
    ("078-05-1120", "<US_SSN>"),
    ("666-12-3456 and 123-00-4567", "666-12-3456 and 123-00-4567"),
    ("DE89 3704 0044 0532 0130 00", "<IBAN_CODE>"),
    ("DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130 01"),  # fails mod-97
    ("192.168.1.20 / fe80::1ff:fe23:4567:890a", "<IP_ADDRESS> / <IP_ADDRESS>"),
    ("999.1.1.1 at 10:30:00", "999.1.1.1 at 10:30:00"),
    ("+44 20 7946 0958", "<PHONE_NUMBER>"),
    ("version 2.0.1 on 2024-01-15 scored 0.93", "version 2.0.1 on 2024-01-15 scored 0.93"),
])
def test_the_pii_detector(text, masked):
    assert pii.mask(text) == masked


# records -----------------------------------------------------------------------------------------
RECORDED = {"usage_tracking_config": {"enabled": True},
            "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "logs",
                                       "table_name_prefix": "chat"}}


def test_records_of_concurrent_queries_all_appear_after_flush(policy, tmp_path):
    doc = endpoint(RECORDED)

    async def one(i: int) -> None:
        body = {"messages": [{"role": "user", "content": f"question {i}"}], "client_request_id": f"c-{i}",
                "usage_context": {"team": "t"}}
        admission = policy.admit(doc, ALICE if i % 2 else SP, None, json.dumps(body).encode())
        await asyncio.sleep(0)  # interleave with the other queries
        answer = json.dumps({"choices": [{"message": {"content": f"answer {i}"}}]}).encode()
        policy.settle(admission, doc, "chat-1", 200, answer, None, 3)

    async def scenario():
        await policy.start()
        try:
            await asyncio.gather(*(one(i) for i in range(200)))
            return await policy.usage(doc, limit=1000), await policy.payloads(doc, limit=1000)
        finally:
            await policy.close()

    usage, payloads = run(scenario())
    assert len(usage) == 200 and len(payloads) == 200
    assert {r["client_request_id"] for r in usage} == {f"c-{i}" for i in range(200)}
    assert {r["databricks_request_id"] for r in usage} == {r["databricks_request_id"] for r in payloads}
    row = next(r for r in usage if r["client_request_id"] == "c-7")
    assert row["requester"] == ALICE.user and row["status_code"] == 200 and row["usage_context"] == {"team": "t"}
    assert row["input_token_count"] == 3 and row["output_token_count"] == 3  # "question" counts 2
    assert row["endpoint_name"] == doc["name"] and row["served_entity_name"] == "chat-1"
    assert row["request_streaming"] is False and row["request_time"].endswith("Z")
    logged = next(r for r in payloads if r["client_request_id"] == "c-7")
    assert json.loads(logged["request"]) == {"messages": [{"role": "user", "content": "question 7"}]}
    assert json.loads(logged["response"]) == {"choices": [{"message": {"content": "answer 7"}}]}
    assert logged["logging_error_codes"] == [] and logged["sampling_fraction"] == 1.0
    assert len(logged["served_entity_id"]) == 32 and logged["request_date"] == logged["request_time"][:10]
    assert stat.S_IMODE(os.stat(tmp_path / "ai_gateway.db").st_mode) == 0o600


def test_payloads_over_the_bound_are_logged_as_null_with_an_error_code(policy):
    doc = endpoint(RECORDED)

    async def scenario():
        await policy.start()
        try:
            admission = policy.admit(doc, ALICE, None, json.dumps({"prompt": "x" * MAX_LOGGED_BYTES}).encode())
            policy.settle(admission, doc, "chat-1", 200, b'{"choices": []}', 1, 1)
            small = policy.admit(doc, ALICE, None, b'{"prompt": "hi"}')
            policy.settle(small, doc, "chat-1", 200, b"[" + b"0," * MAX_LOGGED_BYTES + b"0]", 1, 1)
            return await policy.payloads(doc)
        finally:
            await policy.close()

    big_request, big_response = run(scenario())
    assert big_request["request"] is None and big_request["logging_error_codes"] == ["MAX_REQUEST_SIZE_EXCEEDED"]
    assert big_request["response"] == '{"choices": []}'
    assert big_response["response"] is None and big_response["logging_error_codes"] == ["MAX_RESPONSE_SIZE_EXCEEDED"]


def test_blocked_queries_are_recorded_and_reads_filter_by_endpoint_and_time(policy):
    blocked = endpoint({**RECORDED, "guardrails": {"input": {"invalid_keywords": ["nope"]}}})
    other = endpoint(RECORDED)  # the same payload table, another endpoint

    async def scenario():
        await policy.start()
        try:
            with pytest.raises(AiGatewayError):
                policy.admit(blocked, ALICE, {"prompt": "nope"}, b'{"prompt": "nope"}')
            policy.settle(policy.admit(other, ALICE, None, b'{"prompt": "ok"}'), other, "e", 200, b"{}", 1, 1)
            rows = await policy.payloads(blocked), await policy.usage(blocked), await policy.payloads(other)
            later = await policy.usage(blocked, since_ms=rows[1][0]["timestamp_ms"] + 1)
            return (*rows, later)
        finally:
            await policy.close()

    payloads, usage, others, later = run(scenario())
    assert [r["status_code"] for r in payloads] == [400] and usage[0]["output_token_count"] == 0
    assert json.loads(payloads[0]["response"])["finishReason"] == "input_guardrail_triggered"
    assert [json.loads(r["request"]) for r in others] == [{"prompt": "ok"}]
    assert later == []


def test_reads_before_any_write_are_empty(policy):
    async def scenario():
        await policy.start()
        try:
            return await policy.usage(endpoint()), await policy.payloads(endpoint(RECORDED))
        finally:
            await policy.close()

    assert run(scenario()) == ([], [])


# the rules of rate limits and of the inference table ---------------------------------------------
@pytest.mark.parametrize("limits, words", [
    ([{"key": "endpoint", "principal": "x", "calls": 1}], "names no principal"),
    ([{"key": "user_group", "calls": 1}], "needs principal"),
    ([{"key": "user", "calls": 1}, {"key": "user", "tokens": 5}], "merge them"),
    ([{"key": "user_group", "principal": f"g{i}", "calls": 1} for i in range(6)], "At most 5"),
    ([{"key": "user"}], "calls' or 'tokens'"),
    ([{"calls": 1, "renewal_period": "hour"}], "'minute'"),
])
def test_rate_limit_rules(limits, words):
    with pytest.raises(RuleViolation) as info:
        validate_rate_limits(limits)
    assert words in info.value.message


def test_rate_limit_rules_accept_what_databricks_accepts():
    validate_rate_limits([{"calls": 100, "key": "user", "renewal_period": "minute"},
                          {"tokens": 5000, "calls": 10, "key": "user", "principal": "alice@example.com"},
                          {"calls": 500, "key": "user_group", "principal": "users"},
                          {"calls": 2000, "key": "service_principal"}, {"tokens": 0}])


def test_an_enabled_inference_table_keeps_its_name_until_disabled():
    on = RECORDED["inference_table_config"]
    moved = {"inference_table_config": {**on, "schema_name": "elsewhere"}}
    with pytest.raises(RuleViolation) as info:
        validate_ai_gateway(moved, RECORDED)
    assert "disable it" in info.value.message and "schema_name" in info.value.message
    validate_ai_gateway(moved, {"inference_table_config": {**on, "enabled": False}})
    validate_ai_gateway({"inference_table_config": {"enabled": False}}, RECORDED)
