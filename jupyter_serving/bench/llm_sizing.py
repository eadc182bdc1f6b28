"""Provisioned-throughput sizing from an LLM benchmark, with every number explained. Pure: no I/O.

From the closed-loop levels of a run (`LlmStepResult.as_row` rows):
1. The levels that can be used: at most 5 % failed requests (429s included) and a client that was
   not saturated.
2. The concurrency meeting the latency targets: the highest tested level whose TTFT and TPOT, at
   the `percentile` (p90 by default: one request in ten may be slower), are within the targets.
   More concurrency buys throughput at the cost of per-stream latency, so that is the level at which
   the endpoint serves the most while every stream stays fast enough.
3. The tokens/s needed: target requests/s × (prompt + output tokens per request, as measured).
4. Provisioned-throughput units: ceil(needed tokens/s / tokens/s per unit). Locally one unit is
   `core.rules.PT_TOKENS_PER_UNIT_PER_S` tokens/s (burst scaling doubles the budget, for bursts:
   the steady rate is sized without it). On Databricks a model unit is a model-specific throughput
   band (how many tokens/s a unit buys depends on the model, and on input vs output tokens): read
   the needed tokens/s against the bands the endpoint's model offers.
5. Little's law for the streams in flight at the target (target requests/s × E2E latency), checked
   against the concurrency the units provide locally.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.core.rules import PT_BURST_FACTOR, PT_TOKENS_PER_UNIT_PER_S, entity_concurrency

DEFAULT_PERCENTILE = 90
MAX_FAILURE_SHARE = 0.05
_EPSILON = 1e-9


def _number(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class LlmStepSummary:
    """What sizing reads from one closed-loop level."""

    concurrency: int
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    ttft_ms: float          # at the sizing percentile
    tpot_ms: float
    e2e_mean_ms: float
    input_tokens_mean: float
    output_tokens_mean: float
    failure_share: float
    client_saturated: bool
    successes: int

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any], percentile: int = DEFAULT_PERCENTILE) -> LlmStepSummary:
        share = _number(row, "failure_share")
        return cls(concurrency=int(row["concurrency"]), requests_per_s=_number(row, "requests_per_s"),
                   output_tokens_per_s=_number(row, "output_tokens_per_s"),
                   total_tokens_per_s=_number(row, "total_tokens_per_s"),
                   ttft_ms=_number(row, f"ttft_p{percentile}_ms"), tpot_ms=_number(row, f"tpot_p{percentile}_ms"),
                   e2e_mean_ms=_number(row, "e2e_mean_ms"), input_tokens_mean=_number(row, "input_tokens_mean"),
                   output_tokens_mean=_number(row, "output_tokens_mean"),
                   failure_share=0.0 if math.isnan(share) else share,
                   client_saturated=bool(row.get("client_saturated", False)), successes=int(row.get("successes") or 0))

    def rejection(self) -> str | None:
        if self.successes <= 0 or not self.requests_per_s > 0:
            return "no successful streams"
        if self.failure_share > MAX_FAILURE_SHARE:
            return (f"{self.failure_share:.0%} of its requests failed (429s or errors), above the "
                    f"{MAX_FAILURE_SHARE:.0%} limit: it measured rejection, not serving")
        if self.client_saturated:
            return "the load generator was saturated, so it measured the client, not the model"
        return None

    def meets(self, ttft_ms: float | None, tpot_ms: float | None) -> bool:
        return ((ttft_ms is None or self.ttft_ms <= ttft_ms)
                and (tpot_ms is None or math.isnan(self.tpot_ms) or self.tpot_ms <= tpot_ms))


def summarize_llm_steps(steps: Any, percentile: int = DEFAULT_PERCENTILE) -> list[LlmStepSummary]:
    """Closed-loop levels from a DataFrame, LlmStepResults or row dicts, by concurrency."""
    if hasattr(steps, "to_dict") and hasattr(steps, "columns"):
        rows: Iterable[Mapping[str, Any]] = steps.to_dict("records")
    else:
        rows = [s.as_row() if hasattr(s, "as_row") else s for s in steps]
    return sorted((LlmStepSummary.from_mapping(r, percentile) for r in rows if r.get("mode", "closed") == "closed"),
                  key=lambda s: s.concurrency)


@dataclass
class PtRecommendation:
    target_rps: float
    target_ttft_ms: float | None
    target_tpot_ms: float | None
    percentile: int
    concurrency: int | None              # the highest tested level meeting the targets
    meeting: tuple[int, ...]             # every accepted level meeting them
    prompt_tokens: float                 # per request, as measured
    output_tokens: float
    measured_rps: float                  # at `concurrency` (or the level read, when none met)
    measured_output_tokens_per_s: float
    measured_total_tokens_per_s: float
    needed_tokens_per_s: float           # target_rps × (prompt + output)
    needed_output_tokens_per_s: float
    tokens_per_unit: float
    units: int                           # ceil(needed / tokens_per_unit)
    in_flight: float                     # target_rps × mean E2E latency (Little's law)
    units_concurrency: int               # what `units` admit locally
    current_units: int | None
    tested_concurrency: tuple[int, ...]
    rejected: dict[int, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)

    def served_entity_changes(self) -> dict[str, int]:
        """What Apply sets on the provisioned-throughput entity."""
        return {"provisioned_model_units": self.units}

    def __str__(self) -> str:
        return "\n".join(list(self.explanation) + [f"Warning: {w}" for w in self.warnings])


def _check(target_rps: float, ttft_ms: float | None, tpot_ms: float | None, percentile: int) -> None:
    if not target_rps > 0:
        raise ValueError(f"target requests/s must be positive, got {target_rps}")
    for what, value in (("TTFT target", ttft_ms), ("TPOT target", tpot_ms)):
        if value is not None and not value > 0:
            raise ValueError(f"{what} must be positive, got {value}")
    if percentile not in (50, 90, 99):
        raise ValueError(f"percentile must be 50, 90 or 99, got {percentile}")


def recommend_pt(steps: Any, target_rps: float, *, ttft_ms: float | None = None, tpot_ms: float | None = None,
                 percentile: int = DEFAULT_PERCENTILE, current_units: int | None = None,
                 tokens_per_unit: float = PT_TOKENS_PER_UNIT_PER_S) -> PtRecommendation:
    """Size provisioned throughput for `target_rps` requests/s from an LLM benchmark's closed-loop levels."""
    _check(target_rps, ttft_ms, tpot_ms, percentile)
    summaries = summarize_llm_steps(steps, percentile)
    if not summaries:
        raise ValueError("no closed-loop levels to size from: run the LLM benchmark with --concurrency")
    explanation: list[str] = []
    warnings: list[str] = []
    rejected = {s.concurrency: reason for s in summaries if (reason := s.rejection())}
    accepted = [s for s in summaries if s.concurrency not in rejected]
    for concurrency, reason in rejected.items():
        explanation.append(f"The level at concurrency {concurrency} is left out: {reason}.")
    if not accepted:
        raise ValueError("every level was rejected (" + "; ".join(f"concurrency {c}: {r}" for c, r in rejected.items())
                         + "); fix the endpoint or the client and run again")
    chosen, meeting = _latency_level(accepted, ttft_ms, tpot_ms, percentile, explanation, warnings)
    needed, needed_out, units = _units(chosen, target_rps, tokens_per_unit, explanation)
    in_flight, units_concurrency = _streams(chosen, target_rps, units, explanation, warnings)
    _current(current_units, units, tokens_per_unit, explanation)
    return PtRecommendation(
        target_rps=float(target_rps), target_ttft_ms=ttft_ms, target_tpot_ms=tpot_ms, percentile=percentile,
        concurrency=chosen.concurrency if meeting else None, meeting=tuple(s.concurrency for s in meeting),
        prompt_tokens=chosen.input_tokens_mean, output_tokens=chosen.output_tokens_mean,
        measured_rps=chosen.requests_per_s, measured_output_tokens_per_s=chosen.output_tokens_per_s,
        measured_total_tokens_per_s=chosen.total_tokens_per_s, needed_tokens_per_s=needed,
        needed_output_tokens_per_s=needed_out, tokens_per_unit=float(tokens_per_unit), units=units,
        in_flight=in_flight, units_concurrency=units_concurrency, current_units=current_units,
        tested_concurrency=tuple(s.concurrency for s in summaries), rejected=rejected, warnings=warnings,
        explanation=explanation)


def _latency_level(accepted: list[LlmStepSummary], ttft_ms: float | None, tpot_ms: float | None, percentile: int,
                   explanation: list[str], warnings: list[str]) -> tuple[LlmStepSummary, list[LlmStepSummary]]:
    """(the level sizing reads, the accepted levels meeting the targets)."""
    meeting = [s for s in accepted if s.meets(ttft_ms, tpot_ms)]
    targets = " and ".join(t for t in (f"TTFT ≤ {ttft_ms:g} ms" if ttft_ms is not None else "",
                                       f"TPOT ≤ {tpot_ms:g} ms" if tpot_ms is not None else "") if t)
    if not meeting:
        best = accepted[0]
        warnings.append(
            f"No tested concurrency met p{percentile} {targets} (at concurrency {best.concurrency}: TTFT "
            f"{best.ttft_ms:.1f} ms, TPOT {best.tpot_ms:.1f} ms). Units add throughput, not speed per stream: "
            "the lowest concurrency's latency is the floor. Use a faster model or shorter prompts, or relax "
            "the targets. The sizing below reads that lowest level.")
        return best, []
    chosen = meeting[-1]
    if targets:
        explanation.append(
            f"p{percentile} {targets} holds at concurrency {', '.join(str(s.concurrency) for s in meeting)}; "
            f"the highest, {chosen.concurrency}, serves the most while every stream stays within the "
            f"targets (TTFT {chosen.ttft_ms:.1f} ms, TPOT {chosen.tpot_ms:.1f} ms at p{percentile}).")
    else:
        explanation.append(f"No latency targets: sizing reads the highest clean level, concurrency {chosen.concurrency}.")
    explanation.append(
        f"At concurrency {chosen.concurrency} the endpoint delivered {chosen.output_tokens_per_s:.1f} output "
        f"tokens/s, {chosen.total_tokens_per_s:.1f} tokens/s in all (prompt + output) and "
        f"{chosen.requests_per_s:.2f} requests/s, with {chosen.input_tokens_mean:.1f} prompt and "
        f"{chosen.output_tokens_mean:.1f} output tokens per request.")
    return chosen, meeting


def _units(chosen: LlmStepSummary, target_rps: float, tokens_per_unit: float,
           explanation: list[str]) -> tuple[float, float, int]:
    per_request = chosen.input_tokens_mean + chosen.output_tokens_mean
    needed = target_rps * per_request
    needed_out = target_rps * chosen.output_tokens_mean
    units = max(1, math.ceil(needed / tokens_per_unit - _EPSILON))
    explanation.append(
        f"{target_rps:g} requests/s × ({chosen.input_tokens_mean:.1f} + {chosen.output_tokens_mean:.1f}) tokens = "
        f"{needed:.1f} tokens/s needed ({needed_out:.1f} of them output tokens).")
    explanation.append(
        f"Provisioned throughput: ceil({needed:.1f} / {tokens_per_unit:g} tokens/s per unit) = {units} model "
        f"unit(s). Locally one unit is {tokens_per_unit:g} tokens/s (burst scaling doubles the budget for "
        "bursts; the steady rate is sized without it). On Databricks a model unit is a model-specific "
        "throughput band, so read the needed tokens/s against the bands of the endpoint's model.")
    return needed, needed_out, units


def _streams(chosen: LlmStepSummary, target_rps: float, units: int, explanation: list[str],
             warnings: list[str]) -> tuple[float, int]:
    """Little's law: the streams in flight at the target, against what the units admit locally."""
    in_flight = target_rps * chosen.e2e_mean_ms / 1000.0
    admitted = entity_concurrency({"provisioned_model_units": units})[1]
    explanation.append(
        f"Little's law: {target_rps:g} requests/s × {chosen.e2e_mean_ms / 1000.0:.3f} s per stream = "
        f"{in_flight:.2f} streams in flight on average; {units} unit(s) admit {admitted} concurrent "
        "requests locally.")
    if in_flight > admitted:
        warnings.append(
            f"{in_flight:.1f} streams in flight are more than the {admitted} concurrent requests {units} unit(s) "
            "admit locally: the excess would get 429. Add units (4 concurrent requests per 100) or shorten answers.")
    if in_flight > chosen.concurrency:
        warnings.append(
            f"At the target about {in_flight:.1f} streams are in flight, more than the {chosen.concurrency} "
            "the latency figures were measured at: check with a benchmark at that concurrency once provisioned.")
    return in_flight, admitted


def _current(current_units: int | None, units: int, tokens_per_unit: float, explanation: list[str]) -> None:
    if current_units is None:
        return
    budget = current_units * tokens_per_unit
    change = "no change" if current_units == units else f"{'more' if units > current_units else 'fewer'} than now"
    explanation.append(
        f"The endpoint has {current_units} unit(s) now: {budget:g} tokens/s locally ({budget * PT_BURST_FACTOR:g} "
        f"with burst scaling); {units} unit(s) is {change}.")


__all__ = ["DEFAULT_PERCENTILE", "LlmStepSummary", "PtRecommendation", "recommend_pt", "summarize_llm_steps"]
