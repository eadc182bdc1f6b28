"""Live progress of `run_bench`: a line per step and the chart so far, as display handles in Jupyter
or printed lines elsewhere.
"""
from __future__ import annotations


class LiveDisplay:
    """Progress and the chart while a run goes: display handles in Jupyter, lines elsewhere."""

    def __init__(self, show: bool):
        self.enabled = show
        self.shell = None
        if show:
            try:
                from IPython import get_ipython

                self.shell = get_ipython()
            except ImportError:
                self.shell = None
        self.rich = self.shell is not None and getattr(self.shell, "kernel", None) is not None
        self.text_handle = None
        self.chart_handle = None

    def reserve(self) -> None:
        """Show the (empty) progress line and chart now, from the kernel's thread: a background run
        then only updates them in place, so nothing it shows lands in whatever cell runs later."""
        if not (self.enabled and self.rich):
            return
        from IPython.display import display

        if self.text_handle is None:
            self.text_handle = display({"text/plain": ""}, raw=True, display_id=True)
        if self.chart_handle is None:
            self.chart_handle = display({"text/plain": ""}, raw=True, display_id=True)

    def text(self, line: str) -> None:
        if not self.enabled:
            return
        if not self.rich:
            print(line, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": line}
        if self.text_handle is None:
            self.text_handle = display(bundle, raw=True, display_id=True)
        else:
            self.text_handle.update(bundle, raw=True)

    def chart(self, png: bytes) -> None:
        if not (self.enabled and self.rich):
            return
        from IPython.display import Image, display

        if self.chart_handle is None:
            self.chart_handle = display(Image(data=png, format="png"), display_id=True)
        else:
            self.chart_handle.update(Image(data=png, format="png"))

    def result(self, result, suffix: str = "") -> None:
        """The end of a background run: the result (its HTML, or its text) in place of the progress."""
        if not self.enabled:
            return
        if not self.rich:
            print(repr(result) + suffix, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": repr(result) + suffix,
                  "text/html": result._repr_html_() + (f"<div>{suffix.strip()}</div>" if suffix else "")}
        if self.text_handle is None:
            self.text_handle = display(bundle, raw=True, display_id=True)
        else:
            self.text_handle.update(bundle, raw=True)
        self.clear_chart()

    def clear_chart(self) -> None:
        if self.chart_handle is not None:
            self.chart_handle.update({"text/plain": ""}, raw=True)


def report_steps(live: LiveDisplay, job, finished: list, shown: int, levels: list, unit: str,
            duration: float, name: str) -> int:
    done = list(finished)
    for index in range(shown, len(done)):
        step, png = done[index]
        if png is not None:
            live.chart(png)
        following = (f"; step {index + 2}/{len(levels)} ({unit} {levels[index + 1]:g}, "
                     f"{duration:g} s)…" if index + 1 < len(levels) and not job.done else "")
        live.text(f"'{name}' step {index + 1}/{len(levels)}: {step.describe()}{following}")
    return len(done)
