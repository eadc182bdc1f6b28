"""Sweeps and open-loop runs against a serving endpoint, from plain Python, a notebook or a widget.

The synchronous functions (`sweep`, `open_loop`) always run the load generator on a fresh event
loop in a thread of its own: they work from a Jupyter cell (whose thread already runs a loop) and
from a widget's background thread alike, and Ctrl-C / "interrupt kernel" stops the run cleanly
(connections closed) before the KeyboardInterrupt is re-raised. Pass a `threading.Event` as
`stop` to end a run early from elsewhere: the current step ends, is reported with
`interrupted=True`, and no further step starts. `BenchmarkJob` wraps that for widgets.
"""
from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from jupyter_serving.bench.loadgen import run_closed_loop, run_open_loop
from jupyter_serving.bench.options import parse_levels, parse_rates
from jupyter_serving.bench.results import StepResult
from jupyter_serving.bench.target import Target, auth_headers, encode_payload, invocation_url

StepCallback = Callable[[StepResult], None]
STOP_POLL_S = 0.05


def build_target(host: str, token: str | None, endpoint: str, payload: Any,
                 entity: str | None = None) -> Target:
    """The invocation request, checked (loopback or https only) and serialized once."""
    return Target.from_url(invocation_url(host, endpoint, entity), encode_payload(payload),
                           auth_headers(token))


# -- async API -------------------------------------------------------------------------------------

async def sweep_async(host: str, token: str | None, endpoint: str, payload: Any,
                      concurrency: int | Sequence[int] = (1, 2, 4, 8), duration: float = 5.0,
                      warmup: float = 1.0, entity: str | None = None, *,
                      on_step: StepCallback | None = None, stop=None, timeout: float = 30.0,
                      drain: float = 2.0, ssl_context: ssl.SSLContext | None = None) -> list[StepResult]:
    """Closed-loop steps, one per concurrency level, in the running event loop."""
    target = build_target(host, token, endpoint, payload, entity)
    levels = parse_levels(concurrency)
    async with _StopBridge(stop) as stopped:
        results: list[StepResult] = []
        for level in levels:
            result = await run_closed_loop(target, level, duration_s=duration, warmup_s=warmup,
                                           drain_s=drain, timeout_s=timeout,
                                           ssl_context=ssl_context, stop=stopped)
            results.append(result)
            if on_step is not None:
                on_step(result)
            if stopped.is_set():
                break
        return results


async def open_loop_async(host: str, token: str | None, endpoint: str, payload: Any,
                          rate: float | Sequence[float], duration: float = 5.0,
                          warmup: float = 1.0, entity: str | None = None, *,
                          arrival: str = "poisson", max_in_flight: int = 128,
                          seed: int | None = None, on_step: StepCallback | None = None, stop=None,
                          timeout: float = 30.0, drain: float = 2.0,
                          ssl_context: ssl.SSLContext | None = None) -> list[StepResult]:
    """Open-loop runs, one per rate, in the running event loop."""
    target = build_target(host, token, endpoint, payload, entity)
    rates = parse_rates(rate)
    async with _StopBridge(stop) as stopped:
        results: list[StepResult] = []
        for r in rates:
            result = await run_open_loop(target, r, arrival=arrival, max_in_flight=max_in_flight,
                                         seed=seed, duration_s=duration, warmup_s=warmup,
                                         drain_s=drain, timeout_s=timeout,
                                         ssl_context=ssl_context, stop=stopped)
            results.append(result)
            if on_step is not None:
                on_step(result)
            if stopped.is_set():
                break
        return results


class _StopBridge:
    """An asyncio.Event for the drivers, set when the caller's threading.Event is set (polled:
    a threading.Event cannot wake an event loop by itself)."""

    def __init__(self, stop):
        self.stop = stop
        self.event = stop if isinstance(stop, asyncio.Event) else asyncio.Event()
        self.watcher: asyncio.Task | None = None

    async def __aenter__(self) -> asyncio.Event:
        if self.stop is not None and not isinstance(self.stop, asyncio.Event):
            self.watcher = asyncio.get_running_loop().create_task(self._watch())
        return self.event

    async def _watch(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(STOP_POLL_S)
        self.event.set()

    async def __aexit__(self, *exc) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)


# -- sync API ---------------------------------------------------------------------------------------

def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (about twice the requests per client CPU second), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_in_own_loop(make: Callable[[threading.Event], Awaitable[Any]],
                    stop: threading.Event | None = None) -> Any:
    """Run `make(stop_event)` on a new event loop in a new thread and wait for it. On
    KeyboardInterrupt: stop the run, wait until its connections are closed, re-raise."""
    interrupted = threading.Event()
    outcome: dict[str, Any] = {}

    class _Either:  # set when the caller's stop or our interrupt is set
        def is_set(self) -> bool:
            return interrupted.is_set() or (stop is not None and stop.is_set())

    def work() -> None:
        loop = new_event_loop()
        try:
            outcome["value"] = loop.run_until_complete(make(_Either()))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    thread = threading.Thread(target=work, name="jupyter-serving-bench", daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        interrupted.set()
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def to_frame(results: Iterable[StepResult]):
    """One row per step (see StepResult.as_row for the columns)."""
    import pandas as pd

    rows = [r.as_row() for r in results]
    frame = pd.DataFrame(rows)
    frame.index.name = "step"
    return frame


def sweep(host: str, token: str | None, endpoint: str, payload: Any,
          concurrency: int | Sequence[int] = (1, 2, 4, 8), duration: float = 5.0,
          warmup: float = 1.0, entity: str | None = None, *,
          on_step: StepCallback | None = None, stop: threading.Event | None = None,
          timeout: float = 30.0, drain: float = 2.0,
          ssl_context: ssl.SSLContext | None = None):
    """Closed-loop sweep over concurrency levels; returns a pandas DataFrame, one row per step.

    host: workspace URL (https) or the local backend (http://127.0.0.1:PORT); token: bearer token;
    payload: DataFrame (sent as dataframe_split), dict JSON body, or bytes; entity: target one
    served entity (`served-models/{entity}/invocations`) instead of the endpoint's routing.
    `on_step(StepResult)` runs in the load generator's thread after each step."""
    build_target(host, token, endpoint, payload, entity)  # refuse a bad target before any thread
    parse_levels(concurrency)
    results = run_in_own_loop(lambda stopped: sweep_async(
        host, token, endpoint, payload, concurrency, duration, warmup, entity, on_step=on_step,
        stop=stopped, timeout=timeout, drain=drain, ssl_context=ssl_context), stop)
    return to_frame(results)


def open_loop(host: str, token: str | None, endpoint: str, payload: Any,
              rate: float | Sequence[float], duration: float = 5.0, warmup: float = 1.0,
              entity: str | None = None, *, arrival: str = "poisson", max_in_flight: int = 128,
              seed: int | None = None, on_step: StepCallback | None = None,
              stop: threading.Event | None = None, timeout: float = 30.0, drain: float = 2.0,
              ssl_context: ssl.SSLContext | None = None):
    """Open-loop run(s) at `rate` requests/s (a number or a list of them); returns a DataFrame.
    Latency counts from each request's intended send time; `lag_*` columns show how late the
    client's own scheduler ran, `unsent` what the `max_in_flight` cap never let out."""
    build_target(host, token, endpoint, payload, entity)
    parse_rates(rate)
    results = run_in_own_loop(lambda stopped: open_loop_async(
        host, token, endpoint, payload, rate, duration, warmup, entity, arrival=arrival,
        max_in_flight=max_in_flight, seed=seed, on_step=on_step, stop=stopped, timeout=timeout,
        drain=drain, ssl_context=ssl_context), stop)
    return to_frame(results)


class BenchmarkJob:
    """`sweep` or `open_loop` in a background thread, for widgets: poll `steps`/`done`, call
    `stop()`, then `result()`.

        job = BenchmarkJob(sweep, host, token, "my-endpoint", df, concurrency=[1, 2, 4, 8])
        job.start(); ...; job.stop(); frame = job.result(timeout=30)
    """

    def __init__(self, function: Callable[..., Any], *args: Any, on_step: StepCallback | None = None,
                 **kwargs: Any):
        self._function = function
        self._args = args
        self._kwargs = kwargs
        self._user_on_step = on_step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame = None
        self.error: BaseException | None = None
        self.steps: list[StepResult] = []  # appended as steps finish

    def _on_step(self, result: StepResult) -> None:
        self.steps.append(result)
        if self._user_on_step is not None:
            self._user_on_step(result)

    def start(self) -> BenchmarkJob:
        if self._thread is not None:
            raise RuntimeError("this job was already started; create a new BenchmarkJob")

        def work() -> None:
            try:
                self._frame = self._function(*self._args, on_step=self._on_step, stop=self._stop,
                                             **self._kwargs)
            except BaseException as exc:  # noqa: BLE001 - kept for result(), re-raised there
                self.error = exc

        self._thread = threading.Thread(target=work, name="jupyter-serving-bench-job", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            raise RuntimeError("the job was not started")
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self, timeout: float | None = None):
        """The DataFrame of the steps run (partial if stopped); raises what the run raised."""
        if not self.wait(timeout):
            raise TimeoutError("the benchmark is still running")
        if self.error is not None:
            raise self.error
        return self._frame
