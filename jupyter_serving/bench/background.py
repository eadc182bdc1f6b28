"""`BenchRun`: a `run_bench` that runs off the kernel thread (what `%serve bench` does in Jupyter).

The sweep runs in a daemon thread; progress and the chart go to the cell's display handles, a Stop
button ends it early, and the cell's output ends with the result (summary, chart, table and the
recommendation). The handle stands for the `BenchResult`: reading any of its attributes (`frame`,
`recommendation`, `apply()`...) or unpacking it waits until the run is finished, so code in the
next cell keeps working (`frame, rec = res`). `-o VAR` stores the handle at once and the
`BenchResult` itself once the run is finished.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class BenchRun:
    """A benchmark running in a background thread; waits for its `BenchResult` when read."""

    def __init__(self, name: str, work: Callable[[], Any], stop: threading.Event, live,
                 output: str | None = None, user_ns: dict | None = None):
        self.name = name
        self._work, self._stop, self._live = work, stop, live
        self._output, self._user_ns = output, user_ns
        self._result = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self.button = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"jupyter-serving-bench-{name}")

    def start(self) -> BenchRun:
        reserve = getattr(self._live, "reserve", None)
        if reserve is not None:
            reserve()
        self._show_stop_button()
        if self._output is not None and self._user_ns is not None:
            self._user_ns[self._output] = self
        self._thread.start()
        return self

    def _show_stop_button(self) -> None:
        if not getattr(self._live, "rich", False):
            return
        try:
            import ipywidgets as widgets
            from IPython.display import display
        except ImportError:  # pragma: no cover - ipywidgets is a dependency
            return
        self.button = widgets.Button(description="Stop", icon="stop", button_style="warning",
                                     tooltip="end the current step and stop the benchmark")
        self.button.on_click(lambda _: self.stop())
        display(self.button)

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as err:  # noqa: BLE001 - shown in the cell, raised by .result
            self._error = err
            from jupyter_serving.bench.errors import error_message

            self._live.text(f"Benchmark of '{self.name}' failed: {error_message(err)}")
        finally:
            if self.button is not None:
                self.button.disabled = True
                self.button.layout.display = "none"
            if (self._output is not None and self._user_ns is not None and self._result is not None
                    and self._user_ns.get(self._output) is self):
                self._user_ns[self._output] = self._result
            self._done.set()  # last: whoever waits sees every update

    # -- the handle ------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self) -> None:
        """End the current step and run no further steps."""
        self._stop.set()
        if self.button is not None:
            self.button.disabled = True
            self.button.description = "Stopping…"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has."""
        return self._done.wait(timeout)

    @property
    def result(self):
        """The BenchResult (waits for the run; raises what the run raised)."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.result, attr)

    def __iter__(self):
        return iter(self.result)

    def __repr__(self) -> str:
        if self.done and self._error is None and self._result is not None:
            return repr(self._result)
        if self.done:
            return f"<benchmark of '{self.name}': failed>"
        return (f"<benchmark of '{self.name}' running in the background: the kernel stays free; "
                ".stop() ends it, .result waits for it>")


def join_all(threads, timeout: float | None = None) -> bool:
    """Join the threads given (None skipped) within `timeout` in all; True when every one has ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in threads:
        if thread is not None:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
    return True


__all__ = ["BenchRun", "join_all"]
