"""Benchmark engine and sizing for serving endpoints (issue 7). Importable without IPython.

    from jupyter_serving.bench import sweep, recommend
    frame = sweep(host, token, "my-endpoint", df, concurrency=[1, 2, 4, 8], duration=5)
    advice = recommend(frame, target_qps=100, p99_target_ms=250)
    print(advice); advice.served_entity_config()

Modules: stats (latency histogram), target (URL checks, payloads), client (HTTP/1.1 protocol),
loadgen (closed/open-loop entry points, over driver, closed_loop and open_loop), results
(StepResult), options (levels, rates: the one parser), errors (BenchError), runner
(sweep/open_loop/BenchmarkJob), sizing (Recommendation).
From a notebook: notebook (`run_bench`, what `%serve bench` calls; over endpoint, report, live and
bench_result), widget (`BenchmarkWidget`), plots (matplotlib charts); these load
pandas/matplotlib/ipywidgets only when used.
LLM endpoints (every request streamed; vLLM's TTFT/ITL/TPOT): llm_stats, llm_results, llm_sizing (pure),
llm_client, llm_loadgen, llm_runner (`llm_sweep`), llm_notebook (`run_llm_bench`, what `%serve bench --llm`
calls), llm_endpoint, llm_report, llm_plots, llm_widget (the widget's LLM mode).
"""
from jupyter_serving.bench.loadgen import LoadTestError, run_closed_loop, run_open_loop
from jupyter_serving.bench.results import StepResult
from jupyter_serving.bench.runner import (
    BenchmarkJob,
    build_target,
    open_loop,
    open_loop_async,
    sweep,
    sweep_async,
    to_frame,
)
from jupyter_serving.bench.sizing import Recommendation, recommend
from jupyter_serving.bench.stats import LatencyHistogram
from jupyter_serving.bench.target import Target, TargetNotAllowed, encode_payload, invocation_url

__all__ = [
    "BenchmarkJob", "LatencyHistogram", "LoadTestError", "Recommendation", "StepResult", "Target",
    "TargetNotAllowed", "build_target", "encode_payload", "invocation_url", "open_loop",
    "open_loop_async", "recommend", "run_closed_loop", "run_open_loop", "sweep", "sweep_async",
    "to_frame", "BenchmarkWidget", "BenchResult", "run_bench", "LlmBenchResult", "llm_sweep", "run_llm_bench",
]

_LAZY = {"BenchmarkWidget": "widget", "BenchResult": "notebook", "run_bench": "notebook",
         "LlmBenchResult": "llm_notebook", "llm_sweep": "llm_runner", "run_llm_bench": "llm_notebook"}


def __getattr__(name: str):
    """`BenchmarkWidget`, `run_bench` and `BenchResult` without importing ipywidgets up front."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
