"""The data plane: route invocations by traffic split, gate concurrency, enforce rate limits, count.

Requests beyond a served entity's concurrency are refused at once with Databricks' 429 (never
queued), so a load test sees throttling exactly where the real service would throttle.

Each model server is reached through its own Unix socket's keep-alive pool (`ModelServer.upstream`);
an external model through its provider's API (`external.ExternalServer`), the same way.

A body with `"stream": true` is streamed: the model worker's `/stream` route answers server-sent
events, which go on to the client piece by piece as they arrive (`StreamAnswer`), with the entity's
concurrency slot held until the stream ends. An endpoint with an AI Gateway (or provisioned
throughput) has its policy applied: admission (rate limits by calls and tokens, input guardrails),
the entity's token budget, output guardrails, then usage and payload records with the tokens used.
With `fallback_config.enabled`, a 429 or 5xx from one served entity sends the query on to the next.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from jupyter_serving.core.tokens import usage_of
from jupyter_serving.local.answers import (
    MAX_PAYLOAD_BYTES,
    TOO_DEEP,
    TOO_LARGE,
    GatewayError,
    error_answer,
    json_too_deep,
)
from jupyter_serving.local.engine import Engine
from jupyter_serving.local.external import ExternalServer
from jupyter_serving.local.metrics import EndpointMetrics
from jupyter_serving.local.runtime import EntityRuntime
from jupyter_serving.local.scale_to_zero import ensure_ready
from jupyter_serving.local.sse import StreamMeter, event
from jupyter_serving.local.states import SUSPENDED
from jupyter_serving.local.upstream import UpstreamClosed

REQUEST_TIMEOUT_S = 300.0
COLD_START_TIMEOUT_S = 180.0
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504})
EVENT_STREAM = "text/event-stream"
THROTTLED = ("Too many concurrent requests. Consider increasing the provisioned concurrency of the "
             "served entity.")


@dataclass
class StreamAnswer:
    """A streamed answer: its head, and its body's pieces as they arrive (to be relayed, then closed)."""

    status: int
    media_type: str
    served: str
    pieces: AsyncIterator[bytes]


def _parse(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


class Gateway:
    def __init__(self, engine: Engine, policy=None):
        self.engine = engine
        self.metrics: dict[str, EndpointMetrics] = {}
        self.policy = policy  # the AI Gateway policy (local.aigateway.AiGatewayPolicy), or None

    def metrics_for(self, endpoint: str) -> EndpointMetrics:
        if endpoint not in self.metrics:
            self.metrics[endpoint] = EndpointMetrics()
        return self.metrics[endpoint]

    def forget(self, endpoint: str) -> None:
        self.metrics.pop(endpoint, None)
        if self.policy is not None:
            self.policy.forget(endpoint)

    def _pick(self, doc: dict, entity: str | None) -> EntityRuntime:
        name = doc["name"]
        if doc["state"].get("suspend") == SUSPENDED:
            raise GatewayError(400, "INVALID_STATE",
                               f"Endpoint '{name}' is stopped; start it (POST /api/2.0/serving-endpoints/"
                               f"{name}/config:start) before querying it.")
        runtimes = self.engine.runtimes.get(name) or {}
        if not runtimes:
            raise GatewayError(400, "INVALID_STATE",
                               f"Endpoint '{name}' is not ready (state {doc['state']['ready']}, update "
                               f"{doc['state']['config_update']}); wait until it is READY.")
        if entity is not None:
            if entity not in runtimes:
                raise GatewayError(404, "RESOURCE_DOES_NOT_EXIST",
                                   f"Served entity '{entity}' does not exist on endpoint '{name}'; served "
                                   f"entities: {', '.join(runtimes)}.")
            return runtimes[entity]
        routes = [r for r in doc["config"]["traffic_config"]["routes"]
                  if r["traffic_percentage"] > 0 and r["served_model_name"] in runtimes]
        if not routes:
            raise GatewayError(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint '{name}' routes no traffic.")
        if len(routes) == 1:
            return runtimes[routes[0]["served_model_name"]]
        chosen = random.choices(routes, weights=[r["traffic_percentage"] for r in routes])[0]
        return runtimes[chosen["served_model_name"]]

    def _candidates(self, doc: dict, entity: str | None) -> list[EntityRuntime]:
        """The entity traffic picks, then (with fallbacks enabled) the others in their configured order."""
        first = self._pick(doc, entity)
        fallback = ((doc.get("ai_gateway") or {}).get("fallback_config") or {}).get("enabled")
        if entity is not None or not fallback:
            return [first]
        runtimes = self.engine.runtimes.get(doc["name"]) or {}
        rest = [runtimes[e["name"]] for e in doc["config"]["served_entities"]
                if e["name"] in runtimes and runtimes[e["name"]] is not first]
        return [first, *rest]

    def _admit(self, doc: dict, caller, body: bytes, request, is_json: bool):
        """Rate limits and input guardrails: the policy's admission, or None when nothing applies."""
        if self.policy is None or not (doc.get("ai_gateway") or doc.get("rate_limits") or _provisioned(doc)):
            return None
        if request is None and is_json:
            request = _parse(body)
        return self.policy.admit(doc, caller, request if isinstance(request, dict) else None, body)

    async def invoke(self, doc: dict, body: bytes, content_type: str | None, caller,
                     entity: str | None = None, tasks: frozenset | None = None):
        """Route one query: (status, body, content type, served entity), or a StreamAnswer for `stream: true`.

        `tasks`: the entity tasks the caller's route serves (the OpenAI-compatible routes); raises GatewayError."""
        started = time.perf_counter()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise GatewayError(413, "BAD_REQUEST", TOO_LARGE)
        is_json = content_type is None or "json" in content_type
        if is_json and json_too_deep(body):
            raise GatewayError(400, "BAD_REQUEST", TOO_DEEP)
        request, stream = None, False
        if is_json and b'"stream"' in body:
            request = _parse(body)
            stream = isinstance(request, dict) and request.get("stream") is True
        admission = self._admit(doc, caller, body, request, is_json)
        if admission is not None:
            body = admission.body
        candidates = self._candidates(doc, entity)
        if tasks is not None:
            _check_task(doc["name"], candidates[0], tasks)
        for index, rt in enumerate(candidates):
            last = index == len(candidates) - 1
            try:
                answer = await self._serve(doc, rt, body, content_type, stream, admission, started)
            except GatewayError as exc:
                if last or exc.status not in FALLBACK_STATUSES:
                    raise
                continue
            if last or type(answer) is StreamAnswer or answer[0] not in FALLBACK_STATUSES:
                return self._settled(doc, answer, admission)
        raise AssertionError("unreachable")

    async def _serve(self, doc: dict, rt: EntityRuntime, body: bytes, content_type: str | None, stream: bool,
                     admission, started: float):
        metrics = self.metrics_for(doc["name"])
        if rt.in_flight >= rt.limit:
            metrics.served(rt.name)[0].inc()
            metrics.errors.labels(rt.name, "4xx", "429").inc()
            raise GatewayError(429, "REQUEST_LIMIT_EXCEEDED", THROTTLED)
        if admission is not None:
            self.policy.entity_gate(doc, rt.spec)
        rt.in_flight += 1
        release = True
        try:  # a client that goes away cancels this; the slot is released at once
            if stream:
                status, upstream_type, pieces = await self._forward(rt, body, content_type, stream=True)
                if status == 200 and upstream_type.startswith(EVENT_STREAM):
                    release = False  # held by the stream until it ends
                    meter = StreamMeter(keep=True) if admission is not None else None
                    relay = _Relay(rt.name, pieces, meter, lambda code: self._stream_ended(
                        doc, rt, admission, meter, code, started))
                    return StreamAnswer(status, upstream_type, rt.name, relay)
                payload = await _read_all(pieces)
            else:
                status, payload, upstream_type = await self._forward(rt, body, content_type)
        finally:
            if release:
                rt.in_flight -= 1
                rt.last_used = time.monotonic()
        return self._finish(metrics, rt, status, payload, upstream_type, started)

    def _finish(self, metrics: EndpointMetrics, rt: EntityRuntime, status: int, payload: bytes,
                upstream_type: str, started: float) -> tuple[int, bytes, str, str]:
        requests, latency = metrics.served(rt.name)
        requests.inc()
        latency.observe((time.perf_counter() - started) * 1000.0)
        if status >= 400:
            metrics.errors.labels(rt.name, f"{status // 100}xx", str(status)).inc()
            payload, trace = error_answer(status, payload, upstream_type)
            upstream_type = "application/json"
            if trace:
                self._log_trace(rt, trace)
        return status, payload, upstream_type or "application/json", rt.name

    def _settled(self, doc: dict, answer, admission):
        """The answer after output guardrails, with its usage recorded (streams record when they end)."""
        if admission is None or type(answer) is StreamAnswer:
            return answer
        status, payload, media_type, served = answer
        response = _parse(payload) if "json" in media_type else None
        if status < 400 and isinstance(response, dict):
            try:
                checked = self.policy.check_output(admission, response)
            except GatewayError as exc:
                self.policy.settle(admission, doc, served, exc.status, getattr(exc, "payload", lambda: payload)(),
                                   *_tokens(response))
                raise
            if checked is not response:
                response, payload = checked, json.dumps(checked).encode()
        self.policy.settle(admission, doc, served, status, payload,
                           *_tokens(response if isinstance(response, dict) else None))
        return status, payload, media_type, served

    def _stream_ended(self, doc: dict, rt: EntityRuntime, admission, meter: StreamMeter | None, status: int,
                      started: float) -> None:
        """A stream is over (ended, broken off, or its client left): free the slot and count it."""
        rt.in_flight -= 1
        rt.last_used = time.monotonic()
        requests, latency = self.metrics_for(doc["name"]).served(rt.name)
        requests.inc()
        latency.observe((time.perf_counter() - started) * 1000.0)
        if meter is None:
            return
        if meter.error is not None and status == 200:
            status = 500
        tokens_in = meter.usage[0] if meter.usage is not None else None  # None: the policy's estimate
        record = json.dumps({"chunks": meter.chunks, "truncated": meter.truncated}).encode()
        self.policy.settle(admission, doc, rt.name, status, record, tokens_in, meter.tokens_out)

    @staticmethod
    def _log_trace(rt: EntityRuntime, trace: str) -> None:
        try:
            with open(rt.server.log_path, "a", encoding="utf-8") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} query failed:\n{trace.rstrip()}\n")
        except OSError:
            pass

    async def _forward(self, rt: EntityRuntime, body: bytes, content_type: str | None, stream: bool = False):
        """(status, body, content type), or with `stream` (status, content type, body pieces)."""
        content_type = content_type or "application/json"
        for attempt in (1, 2):
            if not rt.ready.is_set():
                try:
                    await ensure_ready(self.engine, rt, COLD_START_TIMEOUT_S)
                except asyncio.TimeoutError:
                    raise GatewayError(503, "TEMPORARILY_UNAVAILABLE",
                                       f"Served entity '{rt.name}' did not become ready within "
                                       f"{COLD_START_TIMEOUT_S:.0f} s; see its logs.") from None
            upstream = rt.server.upstream
            try:
                if stream:
                    status, answer_type, pieces = await upstream.request_stream(
                        "POST", "/stream", body, content_type, REQUEST_TIMEOUT_S)
                    return status, answer_type.decode("latin-1"), pieces
                status, payload, answer_type = await upstream.request(
                    "POST", "/invocations", body, content_type, REQUEST_TIMEOUT_S)
                return status, payload, answer_type.decode("latin-1")
            except asyncio.TimeoutError:
                raise GatewayError(504, "DEADLINE_EXCEEDED",
                                   f"The model did not answer within {REQUEST_TIMEOUT_S:.0f} s.") from None
            except UpstreamClosed as exc:
                if isinstance(rt.server, ExternalServer):  # the provider: no process of ours to wait for
                    raise GatewayError(503, "TEMPORARILY_UNAVAILABLE", str(exc)) from None
                # The model server died under this request: it is being restarted; retry once on the new one.
                if attempt == 2:
                    raise GatewayError(503, "TEMPORARILY_UNAVAILABLE",
                                       f"Served entity '{rt.name}' is restarting; retry shortly.") from None
                # Give the monitor a moment to notice the exit (it clears `ready`), then wait for recovery.
                deadline = time.monotonic() + 2.0
                while rt.ready.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    def export(self, name: str) -> bytes:
        return self.metrics_for(name).export(self.engine.runtimes.get(name) or {})


class _Relay:
    """A stream's pieces on to the client, looked at on the way (`meter`). Closing it, whether or not it
    was read (a client may leave before the first piece), closes the model's stream and calls `ended`
    once, with the stream's status: that frees the concurrency slot and counts the stream."""

    def __init__(self, entity: str, pieces: AsyncIterator[bytes], meter: StreamMeter | None, ended):
        self.entity, self.pieces, self.meter, self.ended = entity, pieces, meter, ended
        self.status = 200
        self.finished = self.closed = False

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> bytes:
        if self.finished:
            raise StopAsyncIteration
        try:
            piece = await self.pieces.__anext__()
        except StopAsyncIteration:
            self.finished = True
            raise
        except (UpstreamClosed, asyncio.TimeoutError) as exc:
            self.finished, self.status = True, 503
            return event({"error_code": "TEMPORARILY_UNAVAILABLE", "details": [],
                          "message": f"The stream from served entity '{self.entity}' broke off: {exc}"})
        if self.meter is not None:
            self.meter.feed(piece)
        return piece

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.pieces.aclose()
        finally:
            self.ended(self.status)


def _provisioned(doc: dict) -> bool:
    return any(e.get("provisioned_model_units") for e in (doc.get("config") or {}).get("served_entities", ()))


def _check_task(name: str, rt: EntityRuntime, tasks: frozenset) -> None:
    task = getattr(rt, "task", None)
    if task is not None and task not in tasks:
        raise GatewayError(400, "BAD_REQUEST",
                           f"Endpoint '{name}' serves task '{task}', which this route does not take "
                           f"(it takes {', '.join(sorted(tasks))}); query it at /serving-endpoints/{name}/invocations.")


def _tokens(response: dict | None) -> tuple[int | None, int | None]:
    """(input, output) tokens of an answer as the model reports them in `usage` ((None, None): estimate)."""
    usage = usage_of(response) if response is not None else None
    return usage if usage is not None else (None, None)


async def _read_all(pieces: AsyncIterator[bytes]) -> bytes:
    chunks = []
    try:
        async for piece in pieces:
            chunks.append(piece)
    finally:
        await pieces.aclose()
    return b"".join(chunks)
