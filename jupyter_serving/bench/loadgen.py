"""Asyncio load generator: closed loop (N workers back to back) and open loop (fixed arrival rate).

Both drivers run inside the caller's event loop, one keep-alive connection per request in flight
(HTTP/1.1 has no useful pipelining), and react to responses in protocol callbacks: no task or
future per request, which keeps a single Python thread within a small factor of wrk.
The drivers: `closed_loop.ClosedLoop`, `open_loop.OpenLoop`, over `driver.Driver` (the step's
timeline, connections and shutdown).
"""
from __future__ import annotations

import asyncio
import ssl

from jupyter_serving.bench.closed_loop import ClosedLoop
from jupyter_serving.bench.driver import CLOSE_GRACE_S, MAX_DURATION_S, LoadTestError
from jupyter_serving.bench.open_loop import OpenLoop
from jupyter_serving.bench.results import StepResult
from jupyter_serving.bench.target import Target


async def run_closed_loop(target: Target, concurrency: int, *, duration_s: float = 5.0,
                          warmup_s: float = 1.0, drain_s: float = 2.0, timeout_s: float = 30.0,
                          connect_timeout_s: float = 5.0, ssl_context: ssl.SSLContext | None = None,
                          stop: asyncio.Event | None = None) -> StepResult:
    """One closed-loop step: `concurrency` connections sending back to back."""
    driver = ClosedLoop(target, concurrency, duration_s=duration_s, warmup_s=warmup_s,
                        drain_s=drain_s, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                        ssl_context=ssl_context, stop=stop)
    return await driver.run()


async def run_open_loop(target: Target, rate: float, *, arrival: str = "poisson",
                        max_in_flight: int = 128, seed: int | None = None,
                        duration_s: float = 5.0, warmup_s: float = 1.0, drain_s: float = 2.0,
                        timeout_s: float = 30.0, connect_timeout_s: float = 5.0,
                        ssl_context: ssl.SSLContext | None = None,
                        stop: asyncio.Event | None = None) -> StepResult:
    """One open-loop run at `rate` requests/s; latency counted from each intended send time."""
    driver = OpenLoop(target, rate, arrival=arrival, max_in_flight=max_in_flight, seed=seed,
                      duration_s=duration_s, warmup_s=warmup_s, drain_s=drain_s,
                      timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                      ssl_context=ssl_context, stop=stop)
    return await driver.run()


def step_time_bound(duration_s: float, warmup_s: float, drain_s: float,
                    connect_timeout_s: float = 5.0) -> float:
    """Upper bound on one step's wall time (what the drivers promise): resolving and connecting
    share `connect_timeout_s`; closing waits at most CLOSE_GRACE_S for tasks and again for sockets."""
    return connect_timeout_s + warmup_s + duration_s + drain_s + 2 * CLOSE_GRACE_S + 0.5


__all__ = ["LoadTestError", "ClosedLoop", "OpenLoop", "run_closed_loop", "run_open_loop",
           "step_time_bound", "MAX_DURATION_S"]
