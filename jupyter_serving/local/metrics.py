"""Each endpoint's Prometheus metrics, as `GET .../metrics` exports them, under the names Databricks
documents for serving endpoint health metrics, labelled `served_entity_name`:

    request_count_total                    requests answered by the entity's model server
    request_4xx_count_total                requests answered 4xx (by the gateway or the model), by `status`
    request_5xx_count_total                requests answered 5xx, by `status`
    request_latency_ms                     histogram of the gateway's latency, milliseconds
    provisioned_concurrent_requests_total  the entity's concurrency limit
    cpu_usage_percentage                   the model server's CPU use, % of this machine's CPUs
    mem_usage_percentage                   the model server's resident memory, % of this machine's memory
    in_flight_requests                     requests in flight (local; not a Databricks metric)

CPU and memory are sampled (with psutil) from the model server process and its children when the
metrics are read; an entity without a process (scaled to zero, external) reports 0. CPU is the use since
the previous read (0 on the first). GPU metrics (`gpu_usage_percentage`, `gpu_memory_usage_percentage`)
are not exported: per-process GPU use needs NVML, which the local backend does not depend on.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jupyter_serving.local.runtime import EntityRuntime

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency of the `local` extra
    psutil = None

_LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
LABEL = "served_entity_name"


class _Noop:
    def inc(self, amount: float = 1) -> None:
        pass


class StatusCounters:
    """Error answers by status class: `labels(entity, "4xx", "429").inc()` counts one in
    `request_4xx_count_total` (5xx likewise); other classes are not counted."""

    def __init__(self, registry: CollectorRegistry):
        self.by_class = {
            "4xx": Counter("request_4xx_count", "Requests answered with a 4xx status", [LABEL, "status"],
                           registry=registry),
            "5xx": Counter("request_5xx_count", "Requests answered with a 5xx status", [LABEL, "status"],
                           registry=registry),
        }

    def labels(self, entity: str, status_class: str, status: str | int = ""):
        counter = self.by_class.get(status_class)
        return counter.labels(entity, str(status)) if counter is not None else _Noop()


class ProcessSampler:
    """CPU and memory use of model server processes (and their children), by pid."""

    def __init__(self) -> None:
        self._procs: dict[int, object] = {}  # pid -> psutil.Process, kept so cpu_percent has a baseline
        self._cpus = (psutil.cpu_count() if psutil else None) or os.cpu_count() or 1

    def usage(self, pids: list[int]) -> dict[int, tuple[float, float]]:
        """{pid: (cpu %, memory %)} for each of `pids` ((0, 0) when it is not running)."""
        seen: dict[int, object] = {}
        out = {pid: self._sample(pid, seen) for pid in pids}
        self._procs = seen
        return out

    def _sample(self, pid: int, seen: dict[int, object]) -> tuple[float, float]:
        if psutil is None:
            return 0.0, 0.0
        try:
            root = self._procs.get(pid) or psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0, 0.0
        cpu = mem = 0.0
        for proc in family:
            proc = self._procs.get(proc.pid, proc)
            try:
                cpu += proc.cpu_percent(None)
                mem += proc.memory_percent()
            except psutil.Error:
                continue
            seen[proc.pid] = proc
        return cpu / self._cpus, mem


def _pid(rt: EntityRuntime) -> int | None:
    server = rt.server
    running = getattr(server, "running", None)
    if running is None or not running():
        return None
    return getattr(server, "pid", None)


class EndpointMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = [LABEL]
        self.requests = Counter("request_count", "Requests answered", labels, registry=self.registry)
        self.errors = StatusCounters(self.registry)
        self.latency = Histogram("request_latency_ms", "Gateway latency in milliseconds", labels,
                                 buckets=_LATENCY_BUCKETS_MS, registry=self.registry)
        self.concurrency = Gauge("provisioned_concurrent_requests_total", "Concurrency limit", labels,
                                 registry=self.registry)
        self.cpu = Gauge("cpu_usage_percentage", "Model server CPU use, % of this machine's CPUs", labels,
                         registry=self.registry)
        self.memory = Gauge("mem_usage_percentage", "Model server resident memory, % of this machine's memory",
                            labels, registry=self.registry)
        self.in_flight = Gauge("in_flight_requests", "Requests in flight", labels, registry=self.registry)
        self._sampler = ProcessSampler()
        self._children: dict[str, tuple] = {}

    def served(self, entity: str) -> tuple:
        """(requests, latency) counters of one served entity (labelled once, not per request)."""
        children = self._children.get(entity)
        if children is None:
            children = self._children[entity] = (self.requests.labels(entity), self.latency.labels(entity))
        return children

    def export(self, runtimes: dict[str, EntityRuntime]) -> bytes:
        """The exposition text; the gauges describe `runtimes` (the serving entities) as they are now."""
        pids = {rt.name: _pid(rt) for rt in runtimes.values()}
        usage = self._sampler.usage([pid for pid in pids.values() if pid is not None])
        for gauge in (self.concurrency, self.cpu, self.memory, self.in_flight):
            gauge.clear()  # an entity no longer serving has no gauges
        for rt in runtimes.values():
            cpu, mem = usage.get(pids[rt.name], (0.0, 0.0)) if pids[rt.name] is not None else (0.0, 0.0)
            self.concurrency.labels(rt.name).set(rt.limit)
            self.in_flight.labels(rt.name).set(rt.in_flight)
            self.cpu.labels(rt.name).set(round(cpu, 2))
            self.memory.labels(rt.name).set(round(mem, 2))
        return generate_latest(self.registry)
