"""LLM benchmark sweeps from plain Python: one step per concurrency level (closed loop) or per rate
(open loop), each streaming every request.

    from jupyter_serving.bench.llm_runner import llm_sweep
    frame = llm_sweep(host, token, "my-llm", concurrency=[1, 2, 4, 8], prompt_tokens=128,
                      max_tokens=128, duration=10)

Like `runner.sweep`, the synchronous function runs the generator on a fresh event loop in a thread
of its own (Ctrl-C and a `threading.Event` `stop` end it cleanly), so it works from a notebook cell
and from a widget's background thread; `runner.BenchmarkJob(llm_sweep, ...)` runs it in the background.
"""
from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

from jupyter_serving.bench.llm_client import DEFAULT_PROMPTS, LlmTarget, build_llm_target
from jupyter_serving.bench.llm_loadgen import DEFAULT_TIMEOUT_S, run_llm_step
from jupyter_serving.bench.llm_results import LlmStepResult, to_llm_frame
from jupyter_serving.bench.options import parse_levels, parse_rates
from jupyter_serving.bench.runner import _StopBridge, run_in_own_loop

DEFAULT_PROMPT_TOKENS = 128
DEFAULT_MAX_TOKENS = 128
DEFAULT_LLM_DURATION_S = 10.0

StepCallback = Callable[[LlmStepResult], None]


def llm_target(host: str, token: str | None, endpoint: str, *, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
               max_tokens: int = DEFAULT_MAX_TOKENS, custom_inputs: dict | None = None,
               entity: str | None = None, openai: bool = False, prompts: int = DEFAULT_PROMPTS) -> LlmTarget:
    """The checked target and the requests a step sends (see `llm_client.build_llm_target`)."""
    return build_llm_target(host, token, endpoint, prompt_tokens=int(prompt_tokens), max_tokens=int(max_tokens),
                            custom_inputs=custom_inputs, entity=entity, openai=openai, prompts=prompts)


async def llm_sweep_async(target: LlmTarget, *, concurrency: int | Sequence[int] | None = (1, 2, 4, 8),
                          rate: float | Sequence[float] | None = None, on_step: StepCallback | None = None,
                          stop=None, **step: Any) -> list[LlmStepResult]:
    """The steps, in the running event loop: one per concurrency level, or per rate when `rate` is given.
    `step`: `run_llm_step`'s options (duration_s, requests, warmup_s, timeout_s, arrival, targets...)."""
    levels = parse_rates(rate) if rate is not None else parse_levels(concurrency)
    key = "rate" if rate is not None else "concurrency"
    async with _StopBridge(stop) as stopped:
        results: list[LlmStepResult] = []
        for level in levels:
            result = await run_llm_step(target, **{key: level}, stop=stopped, **step)
            results.append(result)
            if on_step is not None:
                on_step(result)
            if stopped.is_set():
                break
        return results


def llm_sweep(host: str, token: str | None, endpoint: str, *, concurrency: Any = (1, 2, 4, 8),
              rate: Any = None, prompt_tokens: int = DEFAULT_PROMPT_TOKENS, max_tokens: int = DEFAULT_MAX_TOKENS,
              custom_inputs: dict | None = None, entity: str | None = None, openai: bool = False,
              duration: float | None = None, requests: int | None = None, warmup: float = 1.0,
              timeout: float = DEFAULT_TIMEOUT_S, drain: float | None = None, arrival: str = "poisson",
              max_in_flight: int = 256, seed: int | None = None, targets: dict | None = None,
              on_step: StepCallback | None = None, stop: threading.Event | None = None,
              ssl_context: ssl.SSLContext | None = None):
    """Stream-benchmark `endpoint`; a DataFrame, one row per step (columns: `LlmStepResult.as_row`).

    Closed loop over `concurrency` levels, or open loop at `rate` requests/s (one or several) with
    Poisson (or `arrival="uniform"`) arrivals. Each step measures `duration` seconds after `warmup`,
    (default 10) or `requests` requests (then `duration`, if given, bounds it). Prompts are `prompt_tokens` words;
    `max_tokens` caps each answer; `custom_inputs` is passed through in every body; `openai`: the
    OpenAI-compatible route (`/serving-endpoints/chat/completions`, `model` = the endpoint) instead of
    `/invocations`. `targets`: {"ttft_ms", "tpot_ms"} for the goodput column."""
    target = llm_target(host, token, endpoint, prompt_tokens=prompt_tokens, max_tokens=max_tokens,
                        custom_inputs=custom_inputs, entity=entity, openai=openai)
    levels: dict[str, Any] = {"rate": rate, "concurrency": None} if rate is not None else {"concurrency": concurrency}
    parse_rates(rate) if rate is not None else parse_levels(concurrency)  # refuse bad levels before any thread
    if duration is None and requests is None:
        duration = DEFAULT_LLM_DURATION_S
    step = {"duration_s": duration, "requests": requests, "warmup_s": warmup, "timeout_s": timeout,
            "drain_s": drain, "arrival": arrival, "max_in_flight": max_in_flight, "seed": seed,
            "targets": targets, "ssl_context": ssl_context}
    results = run_in_own_loop(lambda stopped: llm_sweep_async(target, on_step=on_step, stop=stopped, **levels,
                                                              **step), stop)
    return to_llm_frame(results)


__all__ = ["DEFAULT_LLM_DURATION_S", "DEFAULT_MAX_TOKENS", "DEFAULT_PROMPT_TOKENS", "llm_sweep",
           "llm_sweep_async", "llm_target"]
