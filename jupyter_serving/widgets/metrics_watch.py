"""`MetricsWatch`: an endpoint's metrics over time, drawn live (`%serve metrics NAME --watch`).

Every `interval` seconds the endpoint's Prometheus metrics are read and the window since the previous
read is added to the chart: requests per second with 4xx and 5xx per second, latency p50/p90/p99 (from
the latency histogram's buckets over the window) and the requests in flight. In a kernel it runs in a
background thread (the kernel stays free), updating one status line and one chart in place, with a Stop
button; elsewhere it runs in the foreground, a line per read, until Ctrl-C. It stops after `duration`
seconds, when stopped, or when the endpoint is gone, and says why.
"""
from __future__ import annotations

import io
import threading
import time
from typing import Any

from jupyter_serving.core.errors import NotFoundError, ServingError
from jupyter_serving.core.metrics import WINDOW_KEYS, window

MIN_INTERVAL_S = 0.2
READ_FAILURES = 3  # consecutive failed reads that end the watch


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def _series(rows: list[dict], key: str) -> list[float]:
    return [float("nan") if r.get(key) is None else float(r[key]) for r in rows]


def chart_png(name: str, rows: list[dict]) -> bytes:
    """The chart of the windows so far: throughput and errors, latency percentiles, in flight."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 6.0), dpi=90, layout="constrained")
    top, mid, low = fig.subplots(3, 1, sharex=True)
    t = _series(rows, "t_s")
    top.plot(t, _series(rows, "qps"), color="#2ca02c", label="requests/s")
    top.plot(t, _series(rows, "rate_4xx"), color="#ff7f0e", label="4xx/s")
    top.plot(t, _series(rows, "rate_5xx"), color="#d62728", label="5xx/s")
    top.set_ylabel("per second")
    top.set_title(f"Endpoint '{name}'")
    for key, style in (("p50_ms", "-"), ("p90_ms", "--"), ("p99_ms", "-.")):
        mid.plot(t, _series(rows, key), style, marker=".", label=key[:3])
    mid.set_ylabel("latency (ms)")
    low.step(t, _series(rows, "in_flight"), where="post", color="#7f7f7f", label="in flight")
    low.set_ylabel("in flight")
    low.set_xlabel("seconds")
    for ax in (top, mid, low):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        ax.set_ylim(bottom=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def describe(row: dict) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.0f}"

    return (f"t={row['t_s']:.0f}s  {row['qps']:.2f} req/s  p50/p90/p99 {ms(row['p50_ms'])}/{ms(row['p90_ms'])}/"
            f"{ms(row['p99_ms'])} ms  4xx {row['rate_4xx']:.2f}/s  5xx {row['rate_5xx']:.2f}/s  "
            f"in flight {row['in_flight']:.0f}")


class MetricsWatch:
    """Reads `client.metrics(name)` every `interval` s for `duration` s; `frame` holds the windows."""

    def __init__(self, client: Any, name: str, *, interval: float = 2.0, duration: float = 300.0):
        self.client, self.name = client, name
        self.interval, self.duration = max(float(interval), MIN_INTERVAL_S), float(duration)
        self.rows: list[dict] = []
        self.reason: str | None = None
        self.rich = _in_kernel()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._text = self._chart = self.button = None
        self._first = None

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> MetricsWatch:
        """Read once now (a missing endpoint fails here), then go on in a background thread (in a
        kernel) or in the foreground (elsewhere; Ctrl-C stops it)."""
        self._first = self.client.metrics(self.name)
        if not self.rich:
            self._run()
            return self
        from IPython.display import display

        self._text = display({"text/plain": f"Watching the metrics of '{self.name}'…"}, raw=True, display_id=True)
        self._chart = display({"text/plain": ""}, raw=True, display_id=True)
        self._show_button()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"jupyter-serving-metrics-{self.name}")
        self._thread.start()
        return self

    def _show_button(self) -> None:
        try:
            import ipywidgets as widgets
            from IPython.display import display
        except ImportError:  # pragma: no cover - ipywidgets is a dependency
            return
        self.button = widgets.Button(description="Stop", icon="stop", button_style="warning",
                                     tooltip="stop watching the metrics")
        self.button.on_click(lambda _: self.stop())
        display(self.button)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.reason = self._loop(started)
        except KeyboardInterrupt:
            self.reason = "interrupted"
        except Exception as err:  # noqa: BLE001 - a watch that breaks says why in the cell
            self.reason = f"it failed ({type(err).__name__}: {err})"
        finally:
            self._show(f"Stopped watching '{self.name}' after {time.monotonic() - started:.0f} s: {self.reason}.")
            if self.button is not None:
                self.button.disabled = True
                self.button.layout.display = "none"
            self._done.set()

    def _loop(self, started: float) -> str:
        previous, failures = self._first, 0
        deadline = started + self.duration
        while True:
            if self._stop.wait(max(min(self.interval, deadline - time.monotonic()), 0)):
                return "stopped"
            try:
                current = self.client.metrics(self.name)
            except NotFoundError:
                return f"endpoint '{self.name}' is gone"
            except ServingError as err:
                failures += 1
                if failures >= READ_FAILURES:
                    return f"the metrics could not be read {failures} times ({err.message})"
                continue
            failures = 0
            self.rows.append(window(previous, current, start_s=self._first.time_s))
            previous = current
            self._draw()
            if time.monotonic() >= deadline:
                return f"--duration {self.duration:g} s passed"

    def _draw(self) -> None:
        row = self.rows[-1]
        if not self.rich:
            print(describe(row), flush=True)
            return
        from IPython.display import Image

        self._show(f"Watching '{self.name}' every {self.interval:g} s (stops after {self.duration:g} s): "
                   + describe(row))
        self._chart.update(Image(data=chart_png(self.name, self.rows), format="png"))

    def _show(self, line: str) -> None:
        if self.rich and self._text is not None:
            self._text.update({"text/plain": line}, raw=True)
        else:
            print(line, flush=True)

    # -- the handle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop watching (the chart stays)."""
        self._stop.set()
        if self.button is not None:
            self.button.disabled = True

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def frame(self):
        """One row per window: t_s, qps, p50_ms, p90_ms, p99_ms, rate_4xx, rate_5xx, in_flight."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(WINDOW_KEYS))

    def __repr__(self) -> str:
        if self.done:
            return f"<metrics watch of '{self.name}': stopped ({self.reason}); .frame holds {len(self.rows)} windows>"
        return f"<metrics watch of '{self.name}' running in the background: .stop() ends it, .frame holds the windows>"


__all__ = ["MetricsWatch", "chart_png", "describe"]
