"""The data plane: route invocations by traffic split, gate concurrency, enforce rate limits, count.

Requests beyond a served entity's concurrency are refused at once with Databricks' 429 (never
queued), so a load test sees throttling exactly where the real service would throttle.

Each model server is reached through its own Unix socket's keep-alive pool (`ModelServer.upstream`).
A model's error answers come back in Databricks' shape (`error_code`, a one-line `message`,
`details`); the Python stack trace MLflow attaches goes to the served entity's server log only.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import defaultdict

import numpy as np

from jupyter_serving.local.engine import Engine
from jupyter_serving.local.metrics import EndpointMetrics
from jupyter_serving.local.runtime import EntityRuntime
from jupyter_serving.local.scale_to_zero import ensure_ready
from jupyter_serving.local.states import SUSPENDED
from jupyter_serving.local.upstream import UpstreamClosed

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
REQUEST_TIMEOUT_S = 300.0
COLD_START_TIMEOUT_S = 180.0
MAX_JSON_DEPTH = 128  # deeper JSON is refused before any parser (ours or MLflow's) recurses into it
TOO_LARGE = "The request payload exceeds the 16 MB limit; send fewer rows per request."
TOO_DEEP = f"The request body nests JSON arrays or objects deeper than {MAX_JSON_DEPTH} levels."
_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
          409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE",
          504: "DEADLINE_EXCEEDED"}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
THROTTLED = ("Too many concurrent requests. Consider increasing the provisioned concurrency of the "
             "served entity.")


class GatewayError(Exception):
    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def _max_depth(body: bytes) -> int:
    steps = np.frombuffer(body.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max()) if steps.size else 0


def json_too_deep(body: bytes) -> bool:
    """Whether a JSON body nests deeper than MAX_JSON_DEPTH, found without parsing (nor recursing)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    # Brackets inside strings count too at first; only when that is too deep are strings taken out.
    return _max_depth(body) > MAX_JSON_DEPTH and _max_depth(_JSON_STRING.sub(b"", body)) > MAX_JSON_DEPTH


def _exception_of(trace: str) -> str:
    """`Type: message` of a Python traceback (the lines after its last indented frame line)."""
    lines = trace.rstrip().splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith(" ")), default=-1)
    return " ".join(lines[last_frame + 1:]) or lines[-1]


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_answer(status: int, payload: bytes, content_type: str) -> tuple[bytes, str | None]:
    """A model server's error answer in Databricks' shape, and the stack trace it carried (if any)."""
    doc = None
    if "json" in content_type:
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            pass
    code = _CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    trace = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        code = str(doc.get("error_code") or code)
        message, trace = doc["message"], doc.get("stack_trace")
        if isinstance(trace, str) and trace.strip():
            message = f"{message.rstrip()} Error: {_exception_of(trace)}"
    elif status < 500 and payload and content_type.startswith("text/"):
        message = payload.decode(errors="replace")
    else:
        message = f"The model server failed to answer the query (HTTP {status}); see the served entity's logs."
    body = {"error_code": code, "message": _one_line(message), "details": []}
    return json.dumps(body).encode(), trace if isinstance(trace, str) else None


class RateLimiter:
    """Fixed-window counters for `rate_limits` (endpoint- and AI-gateway-level)."""

    _PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}

    def __init__(self) -> None:
        self._windows: dict[tuple, list] = defaultdict(lambda: [0.0, 0])

    def check(self, endpoint: str, limits: list[dict], user: str) -> None:
        now = time.monotonic()
        for limit in limits:
            calls = limit.get("calls")
            if calls is None:
                continue
            period = self._PERIODS.get(limit.get("renewal_period", "minute"), 60.0)
            key_kind = limit.get("key", "endpoint")
            key = (endpoint, key_kind, user if key_kind in ("user", "service_principal") else None, period)
            window = self._windows[key]
            if now - window[0] >= period:
                window[0], window[1] = now, 0
            if window[1] >= calls:
                who = f"user {user}" if key[2] else "the endpoint"
                raise GatewayError(429, "REQUEST_LIMIT_EXCEEDED",
                                   f"Rate limit of {calls} calls per {limit.get('renewal_period', 'minute')} "
                                   f"exceeded for {who}.")
            window[1] += 1

    def forget(self, endpoint: str) -> None:
        for key in [k for k in self._windows if k[0] == endpoint]:
            del self._windows[key]


class Gateway:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.metrics: dict[str, EndpointMetrics] = {}
        self.limiter = RateLimiter()

    def metrics_for(self, endpoint: str) -> EndpointMetrics:
        if endpoint not in self.metrics:
            self.metrics[endpoint] = EndpointMetrics()
        return self.metrics[endpoint]

    def forget(self, endpoint: str) -> None:
        self.metrics.pop(endpoint, None)
        self.limiter.forget(endpoint)

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

    async def invoke(self, doc: dict, body: bytes, content_type: str | None, user: str,
                     entity: str | None = None) -> tuple[int, bytes, str, str]:
        """Route one query; returns (status, body, content type, served entity). Raises GatewayError."""
        started = time.perf_counter()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise GatewayError(413, "BAD_REQUEST", TOO_LARGE)
        if (content_type is None or "json" in content_type) and json_too_deep(body):
            raise GatewayError(400, "BAD_REQUEST", TOO_DEEP)
        limits = doc.get("rate_limits") or []
        ai_gateway = doc.get("ai_gateway")
        if ai_gateway and ai_gateway.get("rate_limits"):
            limits = list(limits) + list(ai_gateway["rate_limits"])
        if limits:
            self.limiter.check(doc["name"], limits, user)
        rt = self._pick(doc, entity)
        metrics = self.metrics_for(doc["name"])
        if rt.in_flight >= rt.limit:
            metrics.errors.labels(rt.name, "4xx", "429").inc()
            raise GatewayError(429, "REQUEST_LIMIT_EXCEEDED", THROTTLED)
        rt.in_flight += 1
        try:  # a client that goes away cancels this; the slot is released at once
            status, payload, upstream_type = await self._forward(rt, body, content_type)
        finally:
            rt.in_flight -= 1
            rt.last_used = time.monotonic()
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

    @staticmethod
    def _log_trace(rt: EntityRuntime, trace: str) -> None:
        try:
            with open(rt.server.log_path, "a", encoding="utf-8") as log:
                log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} query failed:\n{trace.rstrip()}\n")
        except OSError:
            pass

    async def _forward(self, rt: EntityRuntime, body: bytes, content_type: str | None) -> tuple[int, bytes, str]:
        content_type = content_type or "application/json"
        for attempt in (1, 2):
            if not rt.ready.is_set():
                try:
                    await ensure_ready(self.engine, rt, COLD_START_TIMEOUT_S)
                except asyncio.TimeoutError:
                    raise GatewayError(503, "TEMPORARILY_UNAVAILABLE",
                                       f"Served entity '{rt.name}' did not become ready within "
                                       f"{COLD_START_TIMEOUT_S:.0f} s; see its logs.") from None
            try:
                status, payload, answer_type = await rt.server.upstream.request(
                    "POST", "/invocations", body, content_type, REQUEST_TIMEOUT_S)
                return status, payload, answer_type.decode("latin-1")
            except asyncio.TimeoutError:
                raise GatewayError(504, "DEADLINE_EXCEEDED",
                                   f"The model did not answer within {REQUEST_TIMEOUT_S:.0f} s.") from None
            except UpstreamClosed:
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
