"""`BenchResult`: what `run_bench` returns — the steps, the recommendation, notes, the chart — and
`.apply()` to resize the endpoint as recommended.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from jupyter_serving.bench.endpoint import apply_recommendation
from jupyter_serving.bench.errors import BenchError
from jupyter_serving.bench.report import chart_title, recommendation_html, table


@dataclass(eq=False)
class BenchResult:
    """What `run_bench` returns: the steps (`frame`), the `recommendation` (None without a target
    QPS or in open-loop mode), notes about the run, and the chart. Unpacks as (frame, recommendation)."""

    endpoint: str
    frame: Any
    recommendation: Any = None
    mode: str = "closed"
    entity: str | None = None
    duration: float | None = None
    target_qps: float | None = None
    p99_ms: float | None = None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    client: Any = field(default=None, repr=False)
    _png: bytes | None = field(default=None, repr=False)
    entity_names: list[str] = field(default_factory=list)

    def __iter__(self):
        yield self.frame
        yield self.recommendation

    def figure(self):
        """A new matplotlib Figure of the run (latency and throughput)."""
        from jupyter_serving.bench import plots

        return plots.sweep_figure(self.frame, title=chart_title(self.endpoint, self.frame, self.duration),
                                  target_qps=self.target_qps, p99_target_ms=self.p99_ms)

    def png(self) -> bytes:
        if self._png is None:
            from jupyter_serving.bench import plots

            self._png = plots.figure_png(self.figure())
        return self._png

    def save_chart(self, path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.png())

    def apply_hint(self) -> str:
        """How to apply the recommendation from code: `.apply()`, or `.apply(entity=...)` when the
        endpoint serves several entities and the run targeted none."""
        if self.entity is None and len(self.entity_names) > 1:
            return f".apply(entity='{self.entity_names[0]}') — one of {', '.join(self.entity_names)}"
        return ".apply()"

    def apply(self, client=None, *, entity: str | None = None, custom: bool = False, wait: bool = True,
              timeout: float = 1200.0):
        """Resize the served entity (`entity`, default the benchmarked one) as recommended and wait
        until the endpoint is READY again."""
        if self.recommendation is None:
            raise BenchError("This benchmark has no recommendation to apply",
                             "Run it with a target QPS (--target-qps Q).")
        entity = entity or self.entity
        if entity is None and len(self.entity_names) > 1:
            raise BenchError(f"Endpoint '{self.endpoint}' serves several entities "
                             f"({', '.join(self.entity_names)}): name the one to resize",
                             f"Use .apply(entity='{self.entity_names[0]}').")
        client = client or self.client
        if client is None:
            from jupyter_serving import api

            client = api.get_client()
        return apply_recommendation(client, self.endpoint, self.recommendation, entity=entity,
                                    custom=custom, wait=wait, timeout=timeout)

    def summary(self) -> str:
        steps = len(self.frame) if self.frame is not None else 0
        text = f"Benchmark of '{self.endpoint}': {steps} step(s)"
        if self.interrupted:
            text += " (stopped early)"
        rec = self.recommendation
        if rec is not None:
            text += (f"; recommended provisioned concurrency {rec.required_concurrency} "
                     f"({rec.workload_size or 'custom range'}) for {rec.target_qps:g} QPS")
        return text

    def __repr__(self) -> str:
        parts = [self.summary()]
        if self.frame is not None and len(self.frame):
            parts.append(table(self.frame).to_string())
        parts += [f"Note: {n}" for n in self.notes]
        if self.recommendation is not None:
            parts.append(str(self.recommendation))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        import base64

        parts = [f"<div><b>{html.escape(self.summary())}</b></div>"]
        parts += [f"<div style='color:#a15c00'>{html.escape(n)}</div>" for n in self.notes]
        if self.frame is not None and len(self.frame):
            png = base64.b64encode(self.png()).decode("ascii")
            parts.append(f"<img alt='latency and throughput' src='data:image/png;base64,{png}'/>")
            parts.append(table(self.frame).to_html())
        parts.append(recommendation_html(self.recommendation, how=f"<code>{html.escape(self.apply_hint())}</code>"))
        return "".join(parts)
