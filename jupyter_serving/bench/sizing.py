"""From sweep results to provisioned concurrency, with every number explained. Pure: no I/O.

Two estimates, and the larger wins:
- Little's law: requests in flight = arrival rate × time each spends in the system. With the
  model's runtime measured alone (concurrency 1), target QPS × runtime is the concurrency the
  endpoint must sustain on average; headroom covers bursts.
- Databricks' load-test rule: a Small endpoint provides concurrency 4; if it sustains Q QPS at
  client concurrency 4, the target needs ceil(target / Q) such blocks of 4.
Provisioned concurrency comes in multiples of 4 and maps to Small (4), Medium (8-16),
Large (16-64) or a custom min/max.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.core.status import concurrency_text
from jupyter_serving.core.workloads import CONCURRENCY_STEP, WORKLOAD_SIZES, size_for_concurrency

DEFAULT_HEADROOM = 1.25
MAX_FAILURE_SHARE = 0.05  # Databricks: reject runs with more than 5 % failures
LOAD_TEST_CONCURRENCY = 4  # a Small endpoint's concurrency
_EPSILON = 1e-9  # so that 8.000000001 (float noise) does not round up to the next block


@dataclass(frozen=True)
class StepSummary:
    """The numbers sizing reads from one closed-loop step."""

    concurrency: int
    qps: float
    p50_ms: float
    mean_ms: float
    p99_ms: float
    failure_share: float
    client_saturated: bool
    successes: int

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StepSummary:
        share = row.get("failure_share")
        no_share = share is None or (isinstance(share, float) and math.isnan(share))
        return cls(
            concurrency=int(row["concurrency"]),
            qps=float(row["qps"]),
            p50_ms=float(row["p50_ms"]),
            mean_ms=float(row.get("mean_ms", row["p50_ms"])),
            p99_ms=float(row["p99_ms"]),
            failure_share=0.0 if no_share else float(share),
            client_saturated=bool(row.get("client_saturated", False)),
            successes=int(row.get("successes", 1)),
        )

    def rejection(self) -> str | None:
        if self.successes <= 0 or not self.qps > 0:
            return "no successful responses"
        if self.failure_share > MAX_FAILURE_SHARE:
            return (f"{self.failure_share:.0%} of its requests failed (429s or errors), above the "
                    f"{MAX_FAILURE_SHARE:.0%} limit: it measured rejection, not serving")
        if self.client_saturated:
            return "the load generator's CPU was saturated, so it measured the client, not the model"
        return None


def summarize_steps(steps: Any) -> list[StepSummary]:
    """Closed-loop steps from a sweep DataFrame, a list of StepResult, or a list of dicts."""
    if hasattr(steps, "to_dict") and hasattr(steps, "columns"):
        rows: Iterable[Mapping[str, Any]] = steps.to_dict("records")
    else:
        rows = [s.as_row() if hasattr(s, "as_row") else s for s in steps]
    return sorted((StepSummary.from_mapping(r) for r in rows if r.get("mode", "closed") == "closed"),
                  key=lambda s: s.concurrency)


def round_up_to_step(value: float, step: int = CONCURRENCY_STEP) -> int:
    """Smallest positive multiple of `step` that is >= value."""
    return max(step, math.ceil(value / step - _EPSILON) * step)


@dataclass
class Recommendation:
    target_qps: float
    headroom: float
    runtime_p50_ms: float
    runtime_mean_ms: float
    runtime_concurrency: int            # the step the runtime was read from (1 when available)
    littles_law_concurrency: float      # target QPS × mean runtime, before headroom
    headroom_concurrency: int           # × headroom, rounded up to a multiple of 4
    qps_at_4: float | None
    load_test_concurrency: int | None   # ceil(target / QPS@4) × 4
    required_concurrency: int           # the larger of the two estimates
    workload_size: str | None           # Small/Medium/Large, None = custom
    min_provisioned_concurrency: int
    max_provisioned_concurrency: int
    scale_to_zero: bool
    p99_target_ms: float | None
    lowest_concurrency_meeting_p99: int | None
    highest_concurrency_meeting_p99: int | None
    latency_bound_concurrency: int | None   # blocks of 4 each loaded only as far as p99 allows
    tested_concurrency: tuple[int, ...]
    rejected: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)

    def served_entity_config(self, custom: bool = False) -> dict[str, Any]:
        """Fields to merge into a served entity: a named workload size when one fits (unless
        `custom`), else min/max provisioned concurrency."""
        if self.workload_size is not None and not custom:
            return {"workload_size": self.workload_size, "scale_to_zero_enabled": self.scale_to_zero}
        return {
            "min_provisioned_concurrency": 0 if self.scale_to_zero else self.min_provisioned_concurrency,
            "max_provisioned_concurrency": self.max_provisioned_concurrency
            if self.workload_size is None else self.required_concurrency,
            "scale_to_zero_enabled": self.scale_to_zero,
        }

    def __str__(self) -> str:
        lines = list(self.explanation) + [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def recommend(steps: Any, target_qps: float, *, p99_target_ms: float | None = None,
              headroom: float = DEFAULT_HEADROOM, idle_traffic: bool = False,
              cold_start_s: float | None = None) -> Recommendation:
    """Size an endpoint for `target_qps` from closed-loop sweep steps.

    p99_target_ms: latency the callers need; idle_traffic: whether traffic has idle periods
    (nights, dev endpoints), which is when scale to zero saves money; cold_start_s: measured
    time to serve the first request from zero, if known."""
    _check_inputs(target_qps, headroom, p99_target_ms)
    summaries = summarize_steps(steps)
    if not summaries:
        raise ValueError("no closed-loop steps to size from: run sweep() first")
    explanation: list[str] = []
    warnings: list[str] = []
    accepted, rejected = _accepted_steps(summaries, explanation)
    base = _runtime_step(accepted, explanation, warnings)
    in_flight, littles = _littles_law(target_qps, base, headroom, explanation)
    at_4, load_test = _load_test_rule(accepted, rejected, target_qps, explanation)
    lowest = highest = latency_bound = None
    if p99_target_ms is not None:  # Databricks' "pick the row meeting the latency target"
        lowest, highest, latency_bound = _latency_rows(accepted, at_4, base, target_qps,
                                                       p99_target_ms, explanation, warnings)
    required = _largest_estimate({"Little's law": littles, "the load-test rule": load_test,
                                  "the latency target": latency_bound}, explanation)
    size, low, high = _workload_range(required, explanation)
    tested = tuple(s.concurrency for s in summaries)
    if required > max(tested):
        warnings.append(
            f"Tested up to concurrency {max(tested)}; concurrency {required} assumes throughput "
            "keeps growing with concurrency, which holds when replicas are added but not on one "
            "machine. Check with a load test on the endpoint once it is provisioned.")
    scale_to_zero = _scale_to_zero_advice(idle_traffic, p99_target_ms, cold_start_s, explanation)
    return Recommendation(
        target_qps=float(target_qps), headroom=float(headroom), runtime_p50_ms=base.p50_ms,
        runtime_mean_ms=base.mean_ms, runtime_concurrency=base.concurrency,
        littles_law_concurrency=in_flight, headroom_concurrency=littles, qps_at_4=at_4.qps if at_4 else None,
        load_test_concurrency=load_test, required_concurrency=required, workload_size=size,
        min_provisioned_concurrency=0 if scale_to_zero else low, max_provisioned_concurrency=high,
        scale_to_zero=scale_to_zero, p99_target_ms=p99_target_ms,
        lowest_concurrency_meeting_p99=lowest, highest_concurrency_meeting_p99=highest,
        latency_bound_concurrency=latency_bound,
        tested_concurrency=tested, rejected=rejected, warnings=warnings, explanation=explanation)


def _check_inputs(target_qps: float, headroom: float, p99_target_ms: float | None) -> None:
    if not target_qps > 0:
        raise ValueError(f"target_qps must be positive, got {target_qps}")
    if not headroom >= 1.0:
        raise ValueError(f"headroom must be at least 1.0 (no headroom), got {headroom}")
    if p99_target_ms is not None and not p99_target_ms > 0:
        raise ValueError(f"p99_target_ms must be positive, got {p99_target_ms}")


def _accepted_steps(summaries: list[StepSummary],
                    explanation: list[str]) -> tuple[list[StepSummary], dict[int, str]]:
    """The steps sizing can use, and why the others are left out (raises if none is left)."""
    rejected = {s.concurrency: reason for s in summaries if (reason := s.rejection())}
    accepted = [s for s in summaries if s.rejection() is None]
    for concurrency, reason in rejected.items():
        explanation.append(f"The step at concurrency {concurrency} is left out: {reason}.")
    if not accepted:
        raise ValueError("every step was rejected ("
                         + "; ".join(f"concurrency {c}: {r}" for c, r in rejected.items())
                         + "); fix the endpoint or the client and sweep again")
    return accepted, rejected


def _runtime_step(accepted: list[StepSummary], explanation: list[str], warnings: list[str]) -> StepSummary:
    """1. The model's runtime, measured with no queueing: the lowest accepted concurrency."""
    base = accepted[0]
    explanation.append(
        f"At concurrency {base.concurrency} the endpoint answered in {base.p50_ms:.1f} ms at the "
        f"median (mean {base.mean_ms:.1f} ms): that is the model's runtime per request, "
        "serialization and network included.")
    if base.concurrency != 1:
        warnings.append(
            f"No clean concurrency-1 step: the runtime is read at concurrency {base.concurrency}, "
            "where requests may already queue, so it may be overstated.")
    return base


def _littles_law(target_qps: float, base: StepSummary, headroom: float,
                 explanation: list[str]) -> tuple[float, int]:
    """2. Little's law, with headroom: (requests in flight, provisioned concurrency)."""
    runtime_s = base.mean_ms / 1000.0
    in_flight = target_qps * runtime_s
    with_headroom = in_flight * headroom
    littles = round_up_to_step(with_headroom)
    explanation.append(
        f"Little's law: requests in flight = arrival rate × time in the system, so "
        f"{target_qps:g} QPS × {runtime_s:.4f} s = {in_flight:.2f} requests in flight on average.")
    explanation.append(
        f"With {headroom - 1:.0%} headroom for bursts that is {with_headroom:.2f}, rounded up to a "
        f"multiple of {CONCURRENCY_STEP} (concurrency is provisioned in steps of "
        f"{CONCURRENCY_STEP}): {littles}.")
    return in_flight, littles


def _load_test_rule(accepted: list[StepSummary], rejected: dict[int, str], target_qps: float,
                    explanation: list[str]) -> tuple[StepSummary | None, int | None]:
    """3. Databricks' load-test rule: (the step at concurrency 4, the concurrency it implies)."""
    at_4 = next((s for s in accepted if s.concurrency == LOAD_TEST_CONCURRENCY), None)
    if at_4 is None:
        reason = (f"its step was rejected ({rejected[LOAD_TEST_CONCURRENCY]})"
                  if LOAD_TEST_CONCURRENCY in rejected else "it was not tested")
        explanation.append(
            f"The load-test rule needs a clean step at concurrency {LOAD_TEST_CONCURRENCY}, and "
            f"{reason}; the recommendation rests on Little's law alone.")
        return None, None
    blocks = max(1, math.ceil(target_qps / at_4.qps - _EPSILON))
    load_test = blocks * LOAD_TEST_CONCURRENCY
    explanation.append(
        f"Load-test rule: at concurrency {LOAD_TEST_CONCURRENCY} (a Small endpoint) the "
        f"endpoint sustained {at_4.qps:.1f} QPS, so {target_qps:g} QPS needs "
        f"ceil({target_qps:g} / {at_4.qps:.1f}) = {blocks} block(s) of "
        f"{LOAD_TEST_CONCURRENCY} = {load_test}.")
    return at_4, load_test


def _largest_estimate(estimates: dict[str, int | None], explanation: list[str]) -> int:
    """The largest of the estimates made (None: not made), and which of them it comes from."""
    present = {name: value for name, value in estimates.items() if value is not None}
    required = max(present.values())
    if len(present) > 1:
        governing = [name for name, value in present.items() if value == required]
        if len(governing) == len(present):
            reason = "both estimates agree" if len(present) == 2 else "all three estimates agree"
        else:
            reason = " and ".join(governing)
        explanation.append(f"The recommendation takes the largest estimate ({reason}): "
                           f"concurrency {required}.")
    return required


def _workload_range(required: int, explanation: list[str]) -> tuple[str | None, int, int]:
    """5. The workload size that provides `required` (None: a custom min/max), and its range."""
    size = size_for_concurrency(required)
    if size is not None:
        low, high = WORKLOAD_SIZES[size]
        explanation.append(
            f"Concurrency {required} fits the {size} workload size ({concurrency_text(low, high)} requests).")
        return size, low, high
    largest = max(WORKLOAD_SIZES, key=lambda k: WORKLOAD_SIZES[k][1])
    explanation.append(
        f"Concurrency {required} is more than the {largest} size's "
        f"{WORKLOAD_SIZES[largest][1]}: use a custom range, min_provisioned_concurrency "
        f"{CONCURRENCY_STEP} and max_provisioned_concurrency {required}, so that it scales out with traffic.")
    return None, CONCURRENCY_STEP, required


def _latency_rows(accepted: list[StepSummary], at_4: StepSummary | None, base: StepSummary,
                  target_qps: float, p99_target_ms: float, explanation: list[str],
                  warnings: list[str]) -> tuple[int | None, int | None, int | None]:
    """(lowest, highest) tested concurrency meeting the p99 target, and the concurrency needed
    when a block of 4 may only be loaded as far as the highest row that meets it."""
    meeting = [s for s in accepted if s.p99_ms <= p99_target_ms]
    if not meeting:
        best = min(accepted, key=lambda s: s.p99_ms)
        warnings.append(
            f"No tested concurrency met the p99 target of {p99_target_ms:g} ms (best: "
            f"{best.p99_ms:.1f} ms at concurrency {best.concurrency}). More concurrency does "
            f"not make one request faster: the model's runtime ({base.p50_ms:.1f} ms median) "
            "is the floor. Use a faster model, smaller payloads or a GPU workload type, or "
            "relax the target.")
        return None, None, None
    lowest, highest = meeting[0], meeting[-1]
    explanation.append(
        f"The p99 target of {p99_target_ms:g} ms is met at concurrency "
        f"{', '.join(str(s.concurrency) for s in meeting)} (lowest {lowest.concurrency}, "
        f"highest {highest.concurrency}).")
    if at_4 is None or at_4.p99_ms <= p99_target_ms or highest.concurrency >= LOAD_TEST_CONCURRENCY:
        return lowest.concurrency, highest.concurrency, None
    blocks = max(1, math.ceil(target_qps / highest.qps - _EPSILON))
    bound = blocks * LOAD_TEST_CONCURRENCY
    explanation.append(
        f"At concurrency {LOAD_TEST_CONCURRENCY} p99 is {at_4.p99_ms:.1f} ms, over the target; "
        f"at concurrency {highest.concurrency} it meets the target with "
        f"{highest.qps:.1f} QPS. So each block of {LOAD_TEST_CONCURRENCY} should carry at most "
        f"{highest.qps:.1f} QPS: ceil({target_qps:g} / {highest.qps:.1f}) = {blocks} block(s) "
        f"= {bound}.")
    return lowest.concurrency, highest.concurrency, bound


def _scale_to_zero_advice(idle_traffic: bool, p99_target_ms: float | None,
                          cold_start_s: float | None, explanation: list[str]) -> bool:
    cold = f"about {cold_start_s:g} s" if cold_start_s is not None else "seconds to minutes"
    if not idle_traffic:
        explanation.append(
            "Scale to zero: off. Traffic has no idle periods, so the endpoint would rarely scale "
            "to zero; it would save nothing and only risk cold starts.")
        return False
    if p99_target_ms is not None and (cold_start_s is None or cold_start_s * 1000 > p99_target_ms):
        explanation.append(
            f"Scale to zero: off. Traffic has idle periods, but the first request after each one "
            f"would wait for a cold start ({cold}), far beyond the {p99_target_ms:g} ms p99 "
            "target. Turn it on only if those callers can wait (e.g. a dev endpoint).")
        return False
    explanation.append(
        f"Scale to zero: on. Traffic has idle periods, and nothing is paid while idle; the first "
        f"request after an idle period waits for a cold start ({cold}).")
    return True
