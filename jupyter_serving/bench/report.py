"""How a benchmark reads in a notebook: the steps table, the recommendation card, the chart.

Shared by `run_bench`, `BenchResult` and `BenchmarkWidget`; pandas and matplotlib are used only
through the frames and `plots` they are given.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any

from jupyter_serving.core.status import concurrency_text

# Columns shown in tables (the DataFrame keeps every column), with the headings they get.
TABLE_COLUMNS = ("concurrency", "target_rate", "qps", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                 "successes", "rate_limited", "error_count", "failure_share", "client_saturated",
                 "interrupted")
HEADINGS = {"concurrency": "concurrency", "target_rate": "target QPS", "qps": "QPS", "p50_ms": "p50 ms",
            "p90_ms": "p90 ms", "p99_ms": "p99 ms", "mean_ms": "mean ms", "successes": "OK",
            "rate_limited": "429s", "error_count": "errors", "failure_share": "errors %",
            "client_saturated": "client saturated", "interrupted": "stopped"}


def table(frame):
    """The columns worth reading, rounded, with readable headings ("QPS", "p99 ms", "errors %"...);
    the full DataFrame keeps every column under its own name."""
    if frame is None or len(frame) == 0:
        return frame
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    if "mode" in frame.columns and (frame["mode"] == "closed").all():
        columns = [c for c in columns if c != "target_rate"]
    out = frame[columns].copy()
    if "failure_share" in out.columns:
        out["failure_share"] = out["failure_share"] * 100.0
    for column in out.columns:
        if out[column].dtype.kind == "f":
            out[column] = out[column].round(1)
    return out.rename(columns=HEADINGS)


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def recommendation_rows(rec) -> list[tuple[str, str]]:
    """(label, value) pairs: the numbers of a recommendation card."""
    size = (f"{rec.workload_size} ({concurrency_text(rec.min_provisioned_concurrency, rec.max_provisioned_concurrency)}"
            " requests)" if rec.workload_size else
            f"custom: min {rec.min_provisioned_concurrency}, max {rec.max_provisioned_concurrency}")
    rows = [
        ("Target", f"{rec.target_qps:g} QPS" + (f", p99 ≤ {rec.p99_target_ms:g} ms"
                                                 if rec.p99_target_ms is not None else "")),
        ("Runtime (concurrency %d)" % rec.runtime_concurrency,
         f"p50 {rec.runtime_p50_ms:.1f} ms, mean {rec.runtime_mean_ms:.1f} ms"),
        ("Little's law", f"{rec.littles_law_concurrency:.2f} in flight → ×{rec.headroom:g} headroom → "
                         f"{rec.headroom_concurrency}"),
        ("Load-test rule", "–" if rec.load_test_concurrency is None else
         f"{_fmt(rec.qps_at_4)} QPS at concurrency 4 → {rec.load_test_concurrency}"),
    ]
    if rec.p99_target_ms is not None:
        rows.append(("Latency target", "not met at any tested concurrency"
                     if rec.lowest_concurrency_meeting_p99 is None else
                     f"met at concurrency {rec.lowest_concurrency_meeting_p99}–"
                     f"{rec.highest_concurrency_meeting_p99}"
                     + (f" → {rec.latency_bound_concurrency}" if rec.latency_bound_concurrency else "")))
    rows += [
        ("Provisioned concurrency", str(rec.required_concurrency)),
        ("Workload size", size),
        ("Scale to zero", "on" if rec.scale_to_zero else "off"),
    ]
    return rows


def recommendation_html(rec, *, applied: str | None = None, how: str = "Apply") -> str:
    """A card: the numbers, the explanation sentences, the warnings and the config to apply.
    `how`: what applies it, as HTML ("Apply" for the widget's button, `<code>.apply()</code>` in code)."""
    if rec is None:
        return ""
    e = html.escape
    head = (f"<div style='font-size:1.1em;margin-bottom:6px'><b>Recommendation:</b> provisioned "
            f"concurrency <b>{rec.required_concurrency}</b> → "
            f"<b>{e(rec.workload_size or 'custom range')}</b> for {rec.target_qps:g} QPS</div>")
    numbers = "".join(f"<tr><td style='text-align:left;padding-right:14px;color:#555'>{e(k)}</td>"
                      f"<td style='text-align:left'>{e(v)}</td></tr>" for k, v in recommendation_rows(rec))
    why = "".join(f"<li>{e(s)}</li>" for s in rec.explanation)
    warnings = "".join(f"<li>{e(w)}</li>" for w in rec.warnings)
    parts = [
        "<div style='border:1px solid #bbb;border-radius:6px;padding:8px 12px;margin:4px 0'>",
        head,
        f"<table style='border-collapse:collapse'>{numbers}</table>",
        f"<details open><summary>Why</summary><ol style='margin:4px 0'>{why}</ol></details>",
    ]
    if warnings:
        parts.append(f"<div style='color:#a15c00'><b>Warnings</b><ul style='margin:4px 0'>{warnings}</ul></div>")
    parts.append(f"<div style='color:#555'>{how} sets the served entity's "
                 f"<code>{e(json.dumps(rec.served_entity_config()))}</code> and keeps the rest of its config.</div>")
    if applied:
        parts.append(f"<div style='color:#1a7f37'><b>{e(applied)}</b></div>")
    parts.append("</div>")
    return "".join(parts)


def chart_title(name: str, frame, duration: float | None = None) -> str:
    open_loop = len(frame) > 0 and "mode" in frame.columns and (frame["mode"] == "open").all()
    kind = "open-loop runs" if open_loop else "closed-loop sweep"
    per = f", {duration:g} s per step" if duration else ""
    return f"Endpoint '{name}': {kind}{per}"


def render_png(name: str, frame, *, duration: float | None = None, target_qps: float | None = None,
               p99_ms: float | None = None) -> bytes:
    from jupyter_serving.bench import plots

    fig = plots.sweep_figure(frame, title=chart_title(name, frame, duration), target_qps=target_qps,
                             p99_target_ms=p99_ms)
    return plots.figure_png(fig)
