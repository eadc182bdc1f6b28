"""`OpenLoop`: requests at a fixed average rate (Poisson or evenly spaced), whatever the server does.

It avoids coordinated omission: each request has an intended send time from the arrival
schedule, and its latency is counted from then, so time spent waiting for a free connection
(client-side queueing when the server falls behind) is part of the latency, as a user would see.
"""
from __future__ import annotations

import asyncio
from collections import deque

from jupyter_serving.bench.client import Connection, perf_ns
from jupyter_serving.bench.driver import RECONNECT_BACKOFF_S, Driver
from jupyter_serving.bench.loop_shapes import Arrivals
from jupyter_serving.bench.target import Target


class OpenLoop(Arrivals, Driver):
    """Requests at a fixed average rate, whatever the server does (up to `max_in_flight`)."""

    mode = "open"

    def __init__(self, target: Target, rate: float, *, arrival: str = "poisson",
                 max_in_flight: int = 128, seed: int | None = None, **kwargs):
        super().__init__(target, rate, arrival=arrival, max_in_flight=max_in_flight, seed=seed, **kwargs)
        self.backlog: deque[int] = deque()  # intended send times waiting for a connection
        self.scheduled_measured = 0
        self.finished_measured = 0

    async def _drive(self, start_ns: int) -> bool:
        next_ns = start_ns
        while True:
            if self.stop.is_set():
                return True
            now = perf_ns()
            while next_ns <= now and next_ns < self.measure_until:
                self._dispatch(next_ns, now)
                next_ns += self._gap_ns()
            if next_ns >= self.measure_until:
                return await self._sleep_until(self.measure_until)
            delay = (next_ns - perf_ns()) / 1e9
            if delay > 0.05:  # long gaps: wake up on stop too
                if await self._sleep_until(next_ns):
                    return True
            else:
                await asyncio.sleep(max(0.0, delay))

    def _dispatch(self, intended_ns: int, now_ns: int) -> None:
        if intended_ns >= self.measure_from:
            self.scheduled_measured += 1
            self.recorder.schedule_lag.record((now_ns - intended_ns) // 1000)
        if self.idle:
            self._send(self.idle.pop(), intended_ns)
        else:
            self.backlog.append(intended_ns)
            self._open_more_connections()

    def _send(self, conn: Connection, intended_ns: int) -> None:
        self.in_flight += 1
        conn.intended_ns = intended_ns
        conn.send(self.request, perf_ns())

    def _open_more_connections(self) -> None:
        while (not self.closing and self.connecting < len(self.backlog)
               and len(self.conns) + self.connecting < self.max_in_flight):
            self.connecting += 1
            self._spawn(self._open_one())

    async def _open_one(self) -> None:
        try:
            conn = await self._connect()
        except (OSError, asyncio.TimeoutError) as exc:
            self.connecting -= 1
            now = perf_ns()
            if self.measure_from <= now < self.measure_until:
                self.recorder.record_failure("connection", str(exc) or type(exc).__name__)
            await asyncio.sleep(RECONNECT_BACKOFF_S)
            self._open_more_connections()
            return
        except BaseException:
            self.connecting -= 1
            raise
        self.connecting -= 1
        self.peak_connections = max(self.peak_connections, len(self.conns))
        self._became_idle(conn)

    def _became_idle(self, conn: Connection) -> None:
        # The backlog is served during the drain too: those requests are already late, and their
        # real latency is what the run should report.
        if self.backlog and not self.closing:
            self._send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)
            self._check_drained()

    def _measured(self, conn: Connection, now_ns: int) -> bool:
        return self.measure_from <= conn.intended_ns < self.measure_until

    def _on_failure_counted(self) -> None:
        self.finished_measured += 1

    def _check_drained(self) -> None:
        if not self.sending and self.in_flight == 0 and not self.backlog:
            self._drained.set()

    def on_response(self, conn: Connection, now_ns: int) -> None:
        self.in_flight -= 1
        if self.measure_from <= now_ns < self.measure_until:
            self.answered_in_window += 1
            if conn.status == 200:
                self.successes_in_window += 1
        if self.measure_from <= conn.intended_ns < self.measure_until:
            self.finished_measured += 1
            self.recorder.record_response(conn.status, now_ns - conn.intended_ns,
                                          conn.served_model, conn.error_body)
        if not conn.keep_alive:
            conn.close()
        else:
            self._became_idle(conn)

    def _leftovers(self) -> tuple[int, int]:
        unsent = sum(1 for t in self.backlog if self.measure_from <= t < self.measure_until)
        incomplete = max(0, self.scheduled_measured - self.finished_measured - unsent)
        return unsent, incomplete

    def _concurrency(self) -> int:
        return self.peak_connections

    def _target_rate(self) -> float | None:
        return self.rate
