"""The AI Gateway as the data plane enforces it: what the gateway calls around each query.

    admission = policy.admit(doc, caller, request, raw)   # rate limits, input guardrails (raises)
    policy.entity_gate(doc, entity_spec)                   # provisioned throughput of the chosen entity
    ... forward admission.body to the model ...
    answer = policy.check_output(admission, answer)        # output guardrails (non-streamed answers)
    policy.settle(admission, doc, entity, status, payload, tokens_in, tokens_out)

Refusals raise `AiGatewayError` (429 `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, or a guardrail's
400). An endpoint without `ai_gateway` nor `rate_limits` costs two dict look-ups in `admit` and one in
`settle` (the classic-model hot path): the rest runs only for what an endpoint configures, and its
config is compiled once per change (cached by the identity of the endpoint's `ai_gateway` and
`rate_limits` objects, which every update replaces).

`client_request_id` and `usage_context` are the gateway's fields, not the model's: they are recorded
and taken out of the body forwarded (a guess: Databricks documents them as recorded in the tables).
The inference table logs the request as forwarded (masked when a PII guardrail masks), and the
answer as returned. Queries refused by a rate limit are not recorded (Databricks: 429s may not be
logged); queries a guardrail blocks are, with their 400.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_serving.core.rules import is_provisioned, pt_tokens_per_s
from jupyter_serving.core.tokens import count_tokens, request_text, response_text
from jupyter_serving.local.aigateway import guardrails
from jupyter_serving.local.aigateway.errors import AiGatewayError
from jupyter_serving.local.aigateway.limits import (
    Limit,
    Principal,
    RateLimiter,
    TokenBucket,
    applicable,
    compile_limits,
    principal_of,
)
from jupyter_serving.local.aigateway.records import Records, payload_table, served_entity_id

GATEWAY_FIELDS = ("client_request_id", "usage_context")
MAX_CACHED_CALLERS = 4096


@dataclass
class Plan:
    """An endpoint's AI Gateway config, compiled."""

    limits: tuple[Limit, ...]
    guard_in: guardrails.Side | None
    guard_out: guardrails.Side | None
    usage: bool
    table: str | None
    tokens: bool = False  # some limit counts tokens
    reads_body: bool = False  # guardrails or records need the query's JSON
    bound: dict = field(default_factory=dict)  # caller name -> the limits that bind them

    def bound_for(self, who: Principal) -> tuple:
        found = self.bound.get(who.name)
        if found is None:
            if len(self.bound) >= MAX_CACHED_CALLERS:
                self.bound.clear()
            found = self.bound[who.name] = applicable(self.limits, who)
        return found


def compile_plan(doc: dict) -> Plan | None:
    gateway = doc.get("ai_gateway") or {}
    limits = compile_limits(doc.get("rate_limits"), gateway.get("rate_limits"))
    guard_in, guard_out = guardrails.compile_guardrails(gateway.get("guardrails"))
    usage = bool((gateway.get("usage_tracking_config") or {}).get("enabled"))
    table = AiGatewayPolicy.table_of(doc) if (gateway.get("inference_table_config") or {}).get("enabled") else None
    if not (limits or guard_in or guard_out or usage or table):
        return None
    return Plan(limits, guard_in, guard_out, usage, table, any(limit.metric == "tokens" for limit in limits),
                bool(guard_in or usage or table))


class Admission:
    """A query let through: what to forward, and what `settle` needs to account for it."""

    __slots__ = ("_input_tokens", "_request_id", "body", "client_request_id", "plan", "principal", "bound",
                 "request", "started", "timestamp_ms", "usage_context")

    def __init__(self, body: bytes, request: dict | None, started: float, plan: Plan | None = None):
        self.body, self.request, self.started, self.plan = body, request, started, plan
        self.client_request_id = self.usage_context = self.principal = None
        self.bound: tuple = ()
        self.timestamp_ms = 0
        self._request_id: str | None = None
        self._input_tokens: int | None = None

    @property
    def request_id(self) -> str:
        """Databricks' `databricks_request_id` (a UUID), made when first asked for."""
        if self._request_id is None:
            self._request_id = str(uuid.uuid4())
        return self._request_id

    @property
    def input_tokens(self) -> int:
        """An estimate of the query's input tokens (`core.tokens.count_tokens` of its text)."""
        if self._input_tokens is None:
            request = self.request if self.request is not None else _parse(self.body)
            self._input_tokens = count_tokens(request_text(request))
        return self._input_tokens


def _parse(raw: bytes) -> dict | None:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _answer_tokens(response: bytes | None) -> int:
    if not response:
        return 0
    return count_tokens(response_text(_parse(response)))


class AiGatewayPolicy:
    """Rate limits, provisioned throughput, guardrails, usage tracking and inference tables."""

    def __init__(self, db_path: Path, clock=time.monotonic):
        self.records = Records(db_path)
        self.limiter = RateLimiter()
        self._clock = clock
        self._plans: dict[str, tuple] = {}  # endpoint -> (ai_gateway, rate_limits, plan)
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._principals: dict[tuple, Principal] = {}

    async def start(self) -> None:
        await asyncio.to_thread(self.records.start)

    async def close(self) -> None:
        await self.records.close()

    def _plan(self, doc: dict) -> Plan | None:
        gateway, limits = doc.get("ai_gateway"), doc.get("rate_limits")
        if not gateway and not limits:
            return None
        cached = self._plans.get(doc["name"])
        if cached is not None and cached[0] is gateway and cached[1] is limits:
            return cached[2]
        plan = compile_plan(doc)
        self._plans[doc["name"]] = (gateway, limits, plan)
        return plan

    # before the model ------------------------------------------------------------------------------
    def admit(self, doc: dict, caller, request: dict | None, raw: bytes) -> Admission:
        """Let a query in (rate limits count it) or raise AiGatewayError; input guardrails may mask it."""
        started = time.perf_counter()
        plan = self._plan(doc)
        if plan is None:
            return Admission(raw, request, started)
        if request is None and plan.reads_body:
            request = _parse(raw)
        admission = Admission(raw, request, started, plan)
        admission.principal = self._principal(caller)
        admission.timestamp_ms = int(time.time() * 1000)
        admission.bound = plan.bound_for(admission.principal)
        if admission.bound:
            refused = self.limiter.admit(doc["name"], admission.bound, self._clock())
            if refused is not None:
                message, retry_s = refused
                raise AiGatewayError(429, "REQUEST_LIMIT_EXCEEDED", message, headers={"Retry-After": str(retry_s)})
        if isinstance(admission.request, dict):
            self._strip_gateway_fields(admission)
            try:
                masked = guardrails.check(plan.guard_in, admission.request, True)
            except AiGatewayError as exc:
                self._record(admission, doc, None, exc.status, exc.payload(), 0, 0)
                raise
            if masked is not None:
                admission.request, admission.body = masked, json.dumps(masked).encode()
        return admission

    def _principal(self, caller) -> Principal:
        key = (caller.user, caller.is_admin)
        found = self._principals.get(key)
        if found is None:
            if len(self._principals) >= MAX_CACHED_CALLERS:
                self._principals.clear()
            found = self._principals[key] = principal_of(caller)
        return found

    @staticmethod
    def _strip_gateway_fields(admission: Admission) -> None:
        request = admission.request
        if not any(f in request for f in GATEWAY_FIELDS):
            return
        request = dict(request)
        client_id, context = request.pop("client_request_id", None), request.pop("usage_context", None)
        admission.client_request_id = client_id if isinstance(client_id, str) or client_id is None \
            else json.dumps(client_id)
        admission.usage_context = context if isinstance(context, dict) else None
        admission.request, admission.body = request, json.dumps(request).encode()

    def entity_gate(self, doc: dict, entity_spec: dict) -> None:
        """Provisioned throughput: 429 while the served entity's token bucket is empty. The bucket holds one
        second of throughput and refills continuously; `settle` charges what a query spent (it may go
        negative: the next queries wait until it has refilled)."""
        if not is_provisioned(entity_spec):
            return
        rate = pt_tokens_per_s(entity_spec)  # units × PT_TOKENS_PER_UNIT_PER_S, doubled by burst scaling
        key, now = (doc["name"], entity_spec.get("name")), self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        bucket.resize(rate)
        if bucket.level(now) <= 0:
            wait = bucket.wait_s(now)
            raise AiGatewayError(
                429, "REQUEST_LIMIT_EXCEEDED",
                f"REQUEST_LIMIT_EXCEEDED: Exceeded the provisioned throughput of served entity '{key[1]}' "
                f"({rate:g} tokens per second). Retry in {wait} s, or add provisioned_model_units.",
                headers={"Retry-After": str(wait)})

    # after the model -------------------------------------------------------------------------------
    def check_output(self, admission: Admission, response: dict) -> dict:
        """Output guardrails on a (non-streamed) answer: the answer, masked under MASK; raises when blocked."""
        plan = admission.plan
        if plan is None or plan.guard_out is None:
            return response
        masked = guardrails.check(plan.guard_out, response, False)
        return response if masked is None else masked

    def settle(self, admission: Admission, doc: dict, entity: str, status: int, response: bytes | None,
               input_tokens: int | None, output_tokens: int | None) -> None:
        """Charge the query's tokens (token limits, provisioned throughput) and record it (queued)."""
        plan = admission.plan
        bucket = self._buckets.get((doc["name"], entity)) if self._buckets else None
        if plan is None and bucket is None:
            return
        if bucket is not None or (plan is not None and plan.tokens):
            # Counts the model reported are charged whatever the status; estimates only for answers.
            if input_tokens is None:
                input_tokens = admission.input_tokens if status < 400 else 0
            if output_tokens is None:
                output_tokens = _answer_tokens(response) if status < 400 else 0
            now, spent = self._clock(), input_tokens + output_tokens
            self.limiter.charge(doc["name"], admission.bound, spent, now)
            if bucket is not None and spent > 0:
                bucket.charge(now, spent)
        if plan is not None:
            self._record(admission, doc, entity, status, response, input_tokens, output_tokens)

    def _record(self, admission: Admission, doc: dict, entity: str | None, status: int, response: bytes | None,
                input_tokens: int | None, output_tokens: int | None) -> None:
        plan = admission.plan
        if not (plan.usage or plan.table):
            return
        common = {"databricks_request_id": admission.request_id, "client_request_id": admission.client_request_id,
                  "requester": admission.principal.name, "status_code": status,
                  "served_entity_id": served_entity_id(doc["id"], entity) if entity else None,
                  "served_entity_name": entity, "endpoint_id": doc["id"], "timestamp_ms": admission.timestamp_ms}
        elapsed_ms = int((time.perf_counter() - admission.started) * 1000)
        if plan.usage:
            self.records.put_usage({
                **common, "input_token_count": input_tokens, "output_token_count": output_tokens,
                "usage_context": admission.usage_context, "request_streaming": bool(
                    isinstance(admission.request, dict) and admission.request.get("stream")),
                "endpoint_name": doc["name"], "latency_ms": elapsed_ms,
                "request": admission.request, "response": response})
        if plan.table:
            self.records.put_payload(plan.table, {**common, "execution_duration_ms": elapsed_ms,
                                                  "request": admission.body, "response": response})

    # bookkeeping and reads -------------------------------------------------------------------------
    def forget(self, endpoint: str) -> None:
        self.limiter.forget(endpoint)
        self._plans.pop(endpoint, None)
        for key in [k for k in self._buckets if k[0] == endpoint]:
            del self._buckets[key]

    @staticmethod
    def table_of(doc: dict) -> str | None:
        """The Unity Catalog name of the endpoint's payload table (None when none is configured)."""
        cfg = (doc.get("ai_gateway") or {}).get("inference_table_config") or {}
        return payload_table(cfg) if cfg.get("catalog_name") and cfg.get("schema_name") and \
            cfg.get("table_name_prefix") else None

    async def usage(self, doc: dict, since_ms: int | None = None, limit: int = 1000) -> list[dict]:
        return await self.records.usage(doc["id"], since_ms, limit)

    async def payloads(self, doc: dict, since_ms: int | None = None, limit: int = 1000) -> list[dict]:
        table = self.table_of(doc)
        return [] if table is None else await self.records.payloads(table, doc["id"], since_ms, limit)


__all__ = ["Admission", "AiGatewayError", "AiGatewayPolicy", "Plan", "compile_plan"]
