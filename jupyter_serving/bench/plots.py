"""Charts of a benchmark: latency percentiles and throughput against concurrency (or offered rate).

Every function draws on a plain `matplotlib.figure.Figure` (never pyplot), so it is safe to call
from a widget's background thread and leaves no global figure behind. Pass `ax=` to draw into
your own Axes (e.g. `fig, ax = plt.subplots()` in a notebook); without it a new Figure is made.
matplotlib is imported when a function runs, not when this module is imported.

    from jupyter_serving.bench import plots
    fig = plots.sweep_figure(frame, target_qps=100, p99_target_ms=250)
    png = plots.figure_png(fig)               # bytes, e.g. for an Output widget or a file
"""
from __future__ import annotations

import io
import math
from typing import Any

PERCENTILES = (("p50_ms", "p50 (median)", "-", "o"), ("p90_ms", "p90", "--", "s"),
               ("p99_ms", "p99", "-.", "^"))
LATENCY_COLORS = {"p50_ms": "#1f77b4", "p90_ms": "#ff7f0e", "p99_ms": "#d62728"}
QPS_COLOR = "#2ca02c"
REJECT_COLOR = "#d62728"
TARGET_COLOR = "#7f7f7f"


def _new_axes(figsize=(6.4, 4.4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    return fig.add_subplot()


def _is_open(frame) -> bool:
    return len(frame) > 0 and "mode" in frame.columns and (frame["mode"] == "open").all()


def _x(frame) -> tuple[list[float], str]:
    """(x values, axis label): client concurrency for a sweep, offered rate for open loop."""
    if _is_open(frame):
        return [float(v) for v in frame["target_rate"]], "Offered load (requests/s)"
    return [float(v) for v in frame["concurrency"]], "Client concurrency (requests in flight)"


def _values(frame, column: str) -> list[float]:
    if column not in frame.columns:
        return [math.nan] * len(frame)
    out = []
    for v in frame[column]:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _share_429(frame) -> list[float]:
    """429 responses as a share (%) of every answered or failed request of each step."""
    shares = []
    for row in frame.to_dict("records"):
        total = (row.get("successes") or 0) + (row.get("rate_limited") or 0) + (row.get("error_count") or 0)
        shares.append(100.0 * (row.get("rate_limited") or 0) / total if total else math.nan)
    return shares


def _log2_axis(ax, xs: list[float]) -> None:
    """Concurrency levels usually double: a log2 axis spaces them evenly; ticks at the tested values."""
    finite = sorted({x for x in xs if x > 0 and math.isfinite(x)})
    if len(finite) >= 2 and finite[-1] / finite[0] >= 4:
        ax.set_xscale("log", base=2)
    if finite:
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.xaxis.set_major_locator(FixedLocator(finite))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{x:g}" for x in finite])
        pad = 0.15 if ax.get_xscale() == "log" else 0.05
        if ax.get_xscale() == "log":
            ax.set_xlim(finite[0] / (1 + pad * 4), finite[-1] * (1 + pad * 4))
        elif len(finite) > 1:
            span = finite[-1] - finite[0]
            ax.set_xlim(finite[0] - pad * span, finite[-1] + pad * span)


def plot_latency(frame, ax=None, *, p99_target_ms: float | None = None, title: str | None = None):
    """p50/p90/p99 latency (ms, successful responses only) per step. Returns the Axes."""
    ax = ax if ax is not None else _new_axes()
    xs, xlabel = _x(frame)
    for column, label, style, marker in PERCENTILES:
        ys = _values(frame, column)
        if any(math.isfinite(y) for y in ys):
            ax.plot(xs, ys, linestyle=style, marker=marker, color=LATENCY_COLORS[column], label=label)
    if p99_target_ms is not None:
        ax.axhline(p99_target_ms, color=TARGET_COLOR, linestyle=":", linewidth=1.5,
                   label=f"p99 target ({p99_target_ms:g} ms)")
    _mark_rejected(ax, frame, xs, _values(frame, "p99_ms"))
    _log2_axis(ax, xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Latency of successful requests")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        _legend_below(ax)
    else:
        ax.text(0.5, 0.5, "no successful responses", transform=ax.transAxes, ha="center",
                va="center", color="#555555")
    return ax


def _mark_rejected(ax, frame, xs, ys) -> None:
    """Circle the steps sizing ignores (more than 5 % failures: they measured rejection)."""
    from jupyter_serving.bench.sizing import MAX_FAILURE_SHARE

    shares = _values(frame, "failure_share")
    points = [(x, y) for x, y, s in zip(xs, ys, shares) if math.isfinite(s) and s > MAX_FAILURE_SHARE
              and math.isfinite(y)]
    if points:
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=160, facecolors="none",
                   edgecolors=REJECT_COLOR, linewidths=1.5, zorder=5,
                   label=f"> {MAX_FAILURE_SHARE:.0%} failed (not used for sizing)")


def plot_throughput(frame, ax=None, *, target_qps: float | None = None, ideal: bool = True,
                    title: str | None = None):
    """Successful requests/s per step, the 429 share (%) on a second axis, and for a sweep the
    ideal line c / runtime (runtime = the concurrency-1 median). Returns the main Axes."""
    ax = ax if ax is not None else _new_axes()
    xs, xlabel = _x(frame)
    qps = _values(frame, "qps")
    handles = []
    tops = [y for y in qps if math.isfinite(y)]
    handles += ax.plot(xs, qps, marker="o", color=QPS_COLOR, linewidth=2,
                       label="Throughput (successful requests/s)")
    if ideal and xs:
        if _is_open(frame):
            finite = [x for x in xs if math.isfinite(x)]
            if finite:
                handles += ax.plot([0, max(finite)], [0, max(finite)], color=QPS_COLOR, linestyle=":",
                                   alpha=0.6, label="Ideal: throughput = offered load")
                tops.append(max(finite))
        else:
            runtime_ms = _runtime_ms(frame)
            if runtime_ms:
                line = [x * 1000.0 / runtime_ms for x in xs]
                handles += ax.plot(xs, line, color=QPS_COLOR, linestyle=":", alpha=0.6,
                                   label=f"Ideal: c / runtime ({runtime_ms:.1f} ms)")
                tops += [y for y in line if math.isfinite(y)]
    if target_qps is not None:
        handles.append(ax.axhline(target_qps, color=TARGET_COLOR, linestyle="--", linewidth=1.5,
                                  label=f"Target ({target_qps:g} QPS)"))
    shares = _share_429(frame)
    if any(math.isfinite(s) and s > 0 for s in shares):
        twin = ax.twinx()
        width = _bar_widths(ax, xs)
        heights = [s if math.isfinite(s) else 0 for s in shares]
        bars = twin.bar(xs, heights, width=width, color=REJECT_COLOR, alpha=0.25,
                        label="429 share (% of requests)")
        handles.append(bars)
        for x, h in zip(xs, heights):
            if h > 0:
                twin.annotate(f"{h:.0f}% 429" if h >= 1 else f"{h:.1f}% 429", (x, h),
                              xytext=(0, 3), textcoords="offset points", ha="center",
                              fontsize="small", color=REJECT_COLOR)
        twin.set_ylim(0, 112)
        twin.set_ylabel("429 Too Many Requests (% of requests)", color=REJECT_COLOR)
        twin.tick_params(axis="y", colors=REJECT_COLOR)
    _log2_axis(ax, xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Throughput (requests/s)")
    tops += [target_qps] if target_qps else []  # the axes contain every line
    ax.set_ylim(bottom=0, top=max(tops) * 1.08 if tops and max(tops) > 0 else None)
    ax.set_title(title or "Throughput")
    ax.grid(True, alpha=0.3)
    _legend_below(ax, handles)
    return ax


def _legend_below(ax, handles=None, max_columns: int = 3) -> None:
    """The legend under the axes (outside the plot area: it covers no point)."""
    kwargs = {"handles": handles} if handles is not None else {}
    count = len(handles) if handles is not None else len(ax.get_legend_handles_labels()[0])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(max_columns, max(1, count)),
              fontsize="small", frameon=False, **kwargs)


def _bar_widths(ax, xs: list[float]) -> Any:
    finite = sorted({x for x in xs if x > 0 and math.isfinite(x)})
    if len(finite) >= 2 and finite[-1] / finite[0] >= 4:  # log axis: a constant ratio looks even
        return [x * 0.35 for x in xs]
    gaps = [b - a for a, b in zip(finite, finite[1:])]
    return (min(gaps) if gaps else 1.0) * 0.5


def _runtime_ms(frame) -> float | None:
    """The concurrency-1 median latency, when the sweep has a clean concurrency-1 step."""
    for row in frame.to_dict("records"):
        if row.get("concurrency") == 1 and (row.get("successes") or 0) > 0:
            value = float(row.get("p50_ms") or math.nan)
            return value if math.isfinite(value) and value > 0 else None
    return None


def sweep_figure(frame, *, title: str | None = None, target_qps: float | None = None,
                 p99_target_ms: float | None = None, width: float = 12.0, height: float = 5.2):
    """One Figure with latency (left) and throughput (right) side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    plot_latency(frame, left, p99_target_ms=p99_target_ms)
    plot_throughput(frame, right, target_qps=target_qps)
    if title:
        fig.suptitle(title, fontsize="large")
    return fig


def empty_figure(message: str, width: float = 12.0, height: float = 4.6):
    """A placeholder Figure with one line of text (before the first step ends)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.text(0.5, 0.5, message, ha="center", va="center", fontsize="large", color="#555555")
    return fig


def figure_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a Figure (Agg canvas; no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


__all__ = ["plot_latency", "plot_throughput", "sweep_figure", "empty_figure", "figure_png"]
