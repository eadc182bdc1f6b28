"""An endpoint's Prometheus metrics (`GET .../metrics`): parsed, and turned into rates between two
reads. Pure: no I/O.

`parse_prometheus(text)` reads the text exposition format (what Databricks' export-metrics API and
the local backend answer) into samples; `MetricsSnapshot` holds one read; `window(before, after)`
is what happened between two reads: requests per second, 4xx and 5xx per second, latency p50/p90/p99
(from the `request_latency_ms` histogram's buckets over the window) and the requests in flight.

Metric names (Databricks' serving endpoint health metrics, labelled `served_entity_name`):
`request_count_total`, `request_4xx_count_total`, `request_5xx_count_total`, `request_latency_ms`
(a histogram, milliseconds), `in_flight_requests` (the local backend's gauge).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REQUESTS = "request_count_total"
ERRORS_4XX = "request_4xx_count_total"
ERRORS_5XX = "request_5xx_count_total"
LATENCY = "request_latency_ms"
IN_FLIGHT = "in_flight_requests"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def _labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    inner, out, pos = text[1:-1], {}, 0
    while pos < len(inner):
        m = _LABEL.match(inner, pos)
        if not m:
            raise ValueError(f"bad labels {text!r}")
        out[m.group(1)] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group(0)], m.group(2))
        pos = m.end()
    return out


def _value(text: str) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    return float(text)  # NaN included


def parse_prometheus(text: str) -> tuple[list[Sample], dict[str, str]]:
    """(samples, {family: type}) of a Prometheus text exposition; malformed lines are skipped."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            samples.append(Sample(m.group(1), _labels(m.group(2)), _value(m.group(3))))
        except ValueError:
            continue
    return samples, types


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The `q` quantile of cumulative buckets [(upper bound, count)], as Prometheus estimates it
    (linear within the bucket; the highest finite bound when it falls in +Inf); None without counts."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return buckets[-1][0] if not math.isinf(buckets[-1][0]) else lower_bound


@dataclass(frozen=True)
class MetricsSnapshot:
    """One read of an endpoint's metrics at `time_s` (seconds, any clock the reads share)."""

    endpoint: str
    time_s: float
    samples: tuple[Sample, ...]
    types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, endpoint: str, text: str, time_s: float) -> MetricsSnapshot:
        samples, types = parse_prometheus(text)
        return cls(endpoint, time_s, tuple(samples), types)

    def entities(self) -> list[str]:
        return sorted({s.labels["served_entity_name"] for s in self.samples if "served_entity_name" in s.labels})

    def total(self, name: str, entity: str | None = None) -> float:
        """The sum of metric `name` over its labels (one served entity's, given `entity`)."""
        return sum(s.value for s in self.samples if s.name == name and _matches(s, entity))

    def buckets(self, name: str = LATENCY, entity: str | None = None) -> list[tuple[float, float]]:
        """The histogram's cumulative buckets [(le, count)], summed over the served entities."""
        sums: dict[float, float] = {}
        for s in self.samples:
            if s.name == f"{name}_bucket" and "le" in s.labels and _matches(s, entity):
                bound = _value(s.labels["le"])
                sums[bound] = sums.get(bound, 0.0) + s.value
        return sorted(sums.items())

    def frame(self):
        """Every sample as a row: metric, served_entity_name, labels, value."""
        import pandas as pd

        rows = [{"metric": s.name, "served_entity_name": s.labels.get("served_entity_name"),
                 "labels": {k: v for k, v in s.labels.items() if k != "served_entity_name"} or None,
                 "value": s.value} for s in self.samples]
        return pd.DataFrame(rows, columns=["metric", "served_entity_name", "labels", "value"])

    def summary(self):
        """One row per served entity: requests, 4xx, 5xx, in flight, and latency p50/p90/p99 (ms) over
        every request the histogram counted since the entity started."""
        import pandas as pd

        rows = []
        for entity in self.entities():
            row: dict[str, Any] = {"served_entity_name": entity, "requests": self.total(REQUESTS, entity),
                                   "4xx": self.total(ERRORS_4XX, entity), "5xx": self.total(ERRORS_5XX, entity),
                                   "in_flight": self.total(IN_FLIGHT, entity)}
            buckets = self.buckets(LATENCY, entity)
            for q in (50, 90, 99):
                row[f"p{q}_ms"] = histogram_quantile(q / 100, buckets)
            rows.append(row)
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def _repr_html_(self):
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return repr(self.summary())


def _matches(sample: Sample, entity: str | None) -> bool:
    return entity is None or sample.labels.get("served_entity_name") == entity


def _rate(after: float, before: float, seconds: float) -> float:
    delta = after - before
    return (delta if delta >= 0 else after) / seconds  # a counter that went down was reset: it counts from 0


SUMMARY_COLUMNS = ["served_entity_name", "requests", "4xx", "5xx", "in_flight", "p50_ms", "p90_ms", "p99_ms"]
WINDOW_KEYS = ("t_s", "qps", "p50_ms", "p90_ms", "p99_ms", "rate_4xx", "rate_5xx", "in_flight")


def window(before: MetricsSnapshot, after: MetricsSnapshot, start_s: float | None = None) -> dict[str, Any]:
    """What happened between two reads: `t_s` (seconds since `start_s`, default `before`'s time), qps,
    p50/p90/p99 latency in ms over the window (None without requests), 4xx and 5xx per second, in-flight."""
    seconds = max(after.time_s - before.time_s, 1e-6)
    out: dict[str, Any] = {"t_s": after.time_s - (before.time_s if start_s is None else start_s)}
    out["qps"] = _rate(after.total(REQUESTS), before.total(REQUESTS), seconds)
    old = dict(before.buckets())
    diff = [(le, max(count - old.get(le, 0.0), 0.0)) for le, count in after.buckets()]
    for q in (50, 90, 99):
        out[f"p{q}_ms"] = histogram_quantile(q / 100, diff)
    out["rate_4xx"] = _rate(after.total(ERRORS_4XX), before.total(ERRORS_4XX), seconds)
    out["rate_5xx"] = _rate(after.total(ERRORS_5XX), before.total(ERRORS_5XX), seconds)
    out["in_flight"] = after.total(IN_FLIGHT)
    return out


__all__ = ["ERRORS_4XX", "ERRORS_5XX", "IN_FLIGHT", "LATENCY", "REQUESTS", "SUMMARY_COLUMNS", "WINDOW_KEYS", "MetricsSnapshot", "Sample",
           "histogram_quantile", "parse_prometheus", "window"]
