"""Charts of an LLM benchmark, in one figure: TTFT and ITL percentiles against concurrency (or
offered rate), and output tokens/s with the target. Same conventions as `plots` (a plain Figure,
never pyplot; legends below the plots; log2 axis for doubling levels; matplotlib imported when used).

    from jupyter_serving.bench import llm_plots
    fig = llm_plots.llm_figure(frame, target_ttft_ms=500, target_tpot_ms=50, target_output_tps=2000)
"""
from __future__ import annotations

import math

from jupyter_serving.bench.plots import (
    LATENCY_COLORS,
    PERCENTILES,
    QPS_COLOR,
    TARGET_COLOR,
    _legend_below,
    _log2_axis,
    _mark_rejected,
    _values,
    _x,
)

TOTAL_COLOR = "#9467bd"


def plot_percentiles(frame, ax, metric: str, label: str, *, target_ms: float | None = None,
                     target_label: str = "target"):
    """p50/p90/p99 of `metric` ("ttft", "itl", "tpot", "e2e") per step, in ms."""
    xs, xlabel = _x(frame)
    for column, name, style, marker in PERCENTILES:
        ys = _values(frame, f"{metric}_{column}")
        if any(math.isfinite(y) for y in ys):
            ax.plot(xs, ys, linestyle=style, marker=marker, color=LATENCY_COLORS[column], label=name)
    if target_ms is not None:
        ax.axhline(target_ms, color=TARGET_COLOR, linestyle=":", linewidth=1.5,
                   label=f"{target_label} ({target_ms:g} ms)")
    _mark_rejected(ax, frame, xs, _values(frame, f"{metric}_p99_ms"))
    _log2_axis(ax, xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{label} (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(label)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        _legend_below(ax, max_columns=2)  # three plots side by side: narrow legends
    else:
        ax.text(0.5, 0.5, "no successful streams", transform=ax.transAxes, ha="center", va="center",
                color="#555555")
    return ax


def plot_tokens(frame, ax, *, target_output_tps: float | None = None):
    """Output tokens/s (and prompt + output tokens/s) per step, with the target line."""
    xs, xlabel = _x(frame)
    output = _values(frame, "output_tokens_per_s")
    total = _values(frame, "total_tokens_per_s")
    handles = ax.plot(xs, output, marker="o", color=QPS_COLOR, linewidth=2, label="Output tokens/s")
    handles += ax.plot(xs, total, marker=".", color=TOTAL_COLOR, linestyle="--", alpha=0.8,
                       label="Prompt + output tokens/s")
    tops = [y for y in output + total if math.isfinite(y)]
    if target_output_tps is not None:
        handles.append(ax.axhline(target_output_tps, color=TARGET_COLOR, linestyle="--", linewidth=1.5,
                                  label=f"Target ({target_output_tps:g} output tokens/s)"))
        tops.append(target_output_tps)
    _log2_axis(ax, xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Tokens/s")
    ax.set_ylim(bottom=0, top=max(tops) * 1.08 if tops and max(tops) > 0 else None)
    ax.set_title("Token throughput")
    ax.grid(True, alpha=0.3)
    _legend_below(ax, handles, max_columns=2)
    return ax


def llm_figure(frame, *, title: str | None = None, target_ttft_ms: float | None = None,
               target_tpot_ms: float | None = None, target_output_tps: float | None = None,
               width: float = 15.0, height: float = 5.8):
    """One Figure: TTFT (left), ITL (middle, with the TPOT target), output tokens/s (right)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    plot_percentiles(frame, left, "ttft", "Time to first token", target_ms=target_ttft_ms,
                     target_label="TTFT target")
    plot_percentiles(frame, middle, "itl", "Inter-token latency", target_ms=target_tpot_ms,
                     target_label="TPOT target")
    plot_tokens(frame, right, target_output_tps=target_output_tps)
    if title:
        fig.suptitle(title, fontsize="large")
    return fig


__all__ = ["llm_figure", "plot_percentiles", "plot_tokens"]
