"""How an LLM benchmark reads in a notebook: the levels table, the chart and the provisioned-throughput
card. Shared by `run_llm_bench`, `LlmBenchResult` and the widget's LLM mode; pandas and matplotlib
are used only through the frames and `llm_plots` they are given.
"""
from __future__ import annotations

import html
import json
import math

TABLE_COLUMNS = ("concurrency", "target_rate", "requests_per_s", "output_tokens_per_s", "total_tokens_per_s",
                 "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
                 "e2e_p50_ms", "e2e_p99_ms", "goodput_rps", "output_tokens_mean", "successes", "rate_limited",
                 "error_count", "failure_share", "client_saturated", "interrupted")
HEADINGS = {"concurrency": "concurrency", "target_rate": "offered req/s", "requests_per_s": "req/s",
            "output_tokens_per_s": "output tok/s", "total_tokens_per_s": "total tok/s",
            "ttft_p50_ms": "TTFT p50 ms", "ttft_p99_ms": "TTFT p99 ms", "itl_p50_ms": "ITL p50 ms",
            "itl_p99_ms": "ITL p99 ms", "tpot_p50_ms": "TPOT p50 ms", "tpot_p99_ms": "TPOT p99 ms",
            "e2e_p50_ms": "E2E p50 ms", "e2e_p99_ms": "E2E p99 ms", "goodput_rps": "goodput req/s",
            "output_tokens_mean": "tokens/answer", "successes": "OK", "rate_limited": "429s",
            "error_count": "errors", "failure_share": "errors %", "client_saturated": "client saturated",
            "interrupted": "stopped"}


def llm_table(frame):
    """The columns worth reading, rounded, with readable headings; the frame keeps every column."""
    if frame is None or len(frame) == 0:
        return frame
    columns = [c for c in TABLE_COLUMNS if c in frame.columns]
    if "mode" in frame.columns and (frame["mode"] == "closed").all():
        columns = [c for c in columns if c != "target_rate"]
    if "goodput_rps" in frame.columns and frame["goodput_rps"].isna().all():
        columns = [c for c in columns if c != "goodput_rps"]
    out = frame[columns].copy()
    if "failure_share" in out.columns:
        out["failure_share"] = out["failure_share"] * 100.0
    for column in out.columns:
        if out[column].dtype.kind == "f":
            out[column] = out[column].round(2 if column in ("requests_per_s", "goodput_rps") else 1)
    return out.rename(columns=HEADINGS)


def llm_chart_title(name: str, frame, duration: float | None = None, requests: int | None = None,
                    prompt_tokens: int | None = None, max_tokens: int | None = None) -> str:
    open_loop = len(frame) > 0 and "mode" in frame.columns and (frame["mode"] == "open").all()
    kind = "open-loop rates" if open_loop else "closed-loop streams"
    per = f", {requests} requests per step" if requests else (f", {duration:g} s per step" if duration else "")
    shape = f", {prompt_tokens} prompt / ≤{max_tokens} output tokens" if prompt_tokens and max_tokens else ""
    return f"LLM endpoint '{name}': {kind}{per}{shape}"


def target_output_tps(target_rps: float | None, frame) -> float | None:
    """The output tokens/s a target of requests/s means, with the answers' measured length."""
    if not target_rps or frame is None or not len(frame) or "output_tokens_mean" not in frame.columns:
        return None
    lengths = [float(v) for v in frame["output_tokens_mean"] if v is not None and math.isfinite(float(v))]
    return target_rps * (sum(lengths) / len(lengths)) if lengths else None


def render_llm_png(title: str, frame, *, target_ttft_ms: float | None = None, target_tpot_ms: float | None = None,
                   target_rps: float | None = None) -> bytes:
    from jupyter_serving.bench import llm_plots, plots

    fig = llm_plots.llm_figure(frame, title=title, target_ttft_ms=target_ttft_ms, target_tpot_ms=target_tpot_ms,
                               target_output_tps=target_output_tps(target_rps, frame))
    return plots.figure_png(fig)


def pt_rows(rec) -> list[tuple[str, str]]:
    """(label, value) pairs of a provisioned-throughput card."""
    targets = ", ".join(t for t in (f"TTFT ≤ {rec.target_ttft_ms:g} ms" if rec.target_ttft_ms else "",
                                    f"TPOT ≤ {rec.target_tpot_ms:g} ms" if rec.target_tpot_ms else "") if t)
    rows = [("Target", f"{rec.target_rps:g} requests/s" + (f", p{rec.percentile} {targets}" if targets else "")),
            ("Meets the latency targets", "no tested concurrency" if rec.concurrency is None and targets else
             f"up to concurrency {rec.concurrency}" if rec.concurrency is not None else "–"),
            ("Measured there", f"{rec.measured_output_tokens_per_s:.0f} output tok/s, "
                               f"{rec.measured_total_tokens_per_s:.0f} total tok/s, {rec.measured_rps:.2f} req/s"),
            ("Tokens per request", f"{rec.prompt_tokens:.0f} prompt + {rec.output_tokens:.0f} output"),
            ("Needed", f"{rec.needed_tokens_per_s:.0f} tokens/s ({rec.needed_output_tokens_per_s:.0f} output)"),
            ("Model units", f"{rec.units} (× {rec.tokens_per_unit:g} tokens/s locally)"
                            + (f"; now {rec.current_units}" if rec.current_units is not None else "")),
            ("Streams in flight", f"{rec.in_flight:.1f} (Little's law); {rec.units_concurrency} admitted locally")]
    return rows


def pt_recommendation_html(rec, *, applied: str | None = None, how: str = "Apply") -> str:
    if rec is None:
        return ""
    e = html.escape
    head = (f"<div style='font-size:1.1em;margin-bottom:6px'><b>Provisioned throughput:</b> "
            f"<b>{rec.units}</b> model unit(s) for {rec.target_rps:g} requests/s</div>")
    numbers = "".join(f"<tr><td style='text-align:left;padding-right:14px;color:#555'>{e(k)}</td>"
                      f"<td style='text-align:left'>{e(v)}</td></tr>" for k, v in pt_rows(rec))
    why = "".join(f"<li>{e(s)}</li>" for s in rec.explanation)
    warnings = "".join(f"<li>{e(w)}</li>" for w in rec.warnings)
    parts = ["<div style='border:1px solid #bbb;border-radius:6px;padding:8px 12px;margin:4px 0'>", head,
             f"<table style='border-collapse:collapse'>{numbers}</table>",
             f"<details open><summary>Why</summary><ol style='margin:4px 0'>{why}</ol></details>"]
    if warnings:
        parts.append(f"<div style='color:#a15c00'><b>Warnings</b><ul style='margin:4px 0'>{warnings}</ul></div>")
    parts.append(f"<div style='color:#555'>{how} sets the provisioned-throughput entity's "
                 f"<code>{e(json.dumps(rec.served_entity_changes()))}</code> and keeps the rest of its config.</div>")
    if applied:
        parts.append(f"<div style='color:#1a7f37'><b>{e(applied)}</b></div>")
    parts.append("</div>")
    return "".join(parts)


__all__ = ["llm_chart_title", "llm_table", "pt_recommendation_html", "pt_rows", "render_llm_png",
           "target_output_tps"]
