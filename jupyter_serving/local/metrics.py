"""Each endpoint's Prometheus metrics, as `GET .../metrics` exports them."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jupyter_serving.local.runtime import EntityRuntime

_LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)


class EndpointMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["served_entity_name"]
        self.requests = Counter("request_count", "Requests answered", labels, registry=self.registry)
        self.errors = Counter("request_error_count", "Requests answered with an error, by status class",
                              labels + ["status_class", "status"], registry=self.registry)
        self.latency = Histogram("request_latency_ms", "Gateway latency in milliseconds", labels,
                                 buckets=_LATENCY_BUCKETS_MS, registry=self.registry)
        self.in_flight = Gauge("in_flight_requests", "Requests in flight", labels, registry=self.registry)
        self.concurrency = Gauge("provisioned_concurrent_requests", "Concurrency limit", labels,
                                 registry=self.registry)
        self._children: dict[str, tuple] = {}

    def served(self, entity: str) -> tuple:
        """(requests, latency) counters of one served entity (labelled once, not per request)."""
        children = self._children.get(entity)
        if children is None:
            children = self._children[entity] = (self.requests.labels(entity), self.latency.labels(entity))
        return children

    def export(self, runtimes: dict[str, EntityRuntime]) -> bytes:
        for rt in runtimes.values():
            self.concurrency.labels(rt.name).set(rt.limit)
            self.in_flight.labels(rt.name).set(rt.in_flight)
        return generate_latest(self.registry)
