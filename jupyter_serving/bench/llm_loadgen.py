"""The LLM load generator: streamed chat requests in a closed loop (N streams back to back) or an
open loop (Poisson or evenly spaced arrivals), timed per chunk (`llm_client.StreamConnection`).

It runs on bench's `driver.Driver` (connections, warm-up, the timeout watchdog, CPU snapshots,
a shutdown that always closes every connection) with these LLM rules:
- A request is *measured* when it is sent (closed loop) or scheduled (open loop) inside the
  measured window: after the warm-up, for `duration` seconds, or until `requests` measured requests
  have gone out. Its latencies count from then: in an open loop from the scheduled time, so time
  spent waiting for a connection is part of its TTFT and E2E latency (no coordinated omission, as in
  `open_loop.OpenLoop`).
- The load stays on after the window (unmeasured requests) until every measured request has
  finished or timed out, so the last measured streams see the same load as the first.
- Throughput is what arrived from the window's start until the last measured request finished:
  output tokens (usage tokens spread over their chunks, streams still open included), successful
  requests and their prompt tokens (`llm_stats.RateBins`).
- The client's own saturation is flagged: its thread's CPU share, the event loop's wake-up lag
  (chunk timestamps are taken in its callbacks) and, open loop, the scheduler's lag.
"""
from __future__ import annotations

import asyncio
from collections import deque

from jupyter_serving.bench.client import perf_ns
from jupyter_serving.bench.driver import RECONNECT_BACKOFF_S, Driver
from jupyter_serving.bench.llm_client import LlmTarget, StreamConnection, open_stream_connection
from jupyter_serving.bench.llm_results import LlmStepResult, build_llm_result
from jupyter_serving.bench.llm_stats import LlmRecorder, RateBins, stream_metrics
from jupyter_serving.bench.loop_shapes import Arrivals, ConcurrencyWorkers
from jupyter_serving.bench.stats import LatencyHistogram

LOOP_LAG_PERIOD_S = 0.01
DEFAULT_TIMEOUT_S = 60.0  # one streamed answer can take long: max_tokens × ITL
DEFAULT_DRAIN_S = 60.0


class LlmDriver(Driver):
    """What the LLM closed and open loops share (see the module docstring)."""

    def __init__(self, target: LlmTarget, *, requests: int | None = None,
                 targets: dict[str, float | None] | None = None, **kwargs):
        super().__init__(target.target, **kwargs)
        if requests is not None and (not isinstance(requests, int) or requests < 1):
            raise ValueError(f"requests must be a positive integer, got {requests!r}")
        self.llm = target
        self.recorder = LlmRecorder()
        self.max_requests = requests
        self.targets = dict(targets or {})
        self.next_index = 0
        self.measured_sent = 0
        self.measured_open = 0      # measured requests not finished yet (in flight or waiting)
        self.filling = False        # the load is on (until the measured requests are done)
        self.bins: RateBins | None = None
        self.loop_lag = LatencyHistogram()
        self.window_closed = asyncio.Event()
        self.end_ns = 0             # the last measured request finished (the throughput window's end)
        self._cpu_end_ns = 0

    # -- the measured window -----------------------------------------------------------------------

    def _begin(self) -> None:
        self.bins = RateBins(self.measure_from)
        self.filling = True
        self._spawn(self._lag_monitor())

    def _admit(self, when_ns: int) -> bool:
        """Whether a request sent (scheduled) at `when_ns` is measured; counts it if so."""
        if not self.measure_from <= when_ns < self.measure_until:
            return False
        self.measured_sent += 1
        self.measured_open += 1
        if self.max_requests is not None and self.measured_sent >= self.max_requests:
            self.measure_until = when_ns + 1
            self.window_closed.set()
        return True

    async def _until_either(self, event: asyncio.Event, timeout_s: float) -> None:
        """Until `event` or the stop event is set, or `timeout_s` has passed."""
        waits = {asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(event.wait())}
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout_s), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _wait_window(self) -> bool:
        """Until the window ends (its duration, or `requests` sent); True if stopped first."""
        await self._until_either(self.window_closed, (self.measure_until - perf_ns()) / 1e9)
        return self.stop.is_set()

    async def _drain(self) -> None:
        """Until the measured requests are done (the load stays on meanwhile), `drain_s`, or Stop."""
        if not self._drained.is_set():
            await self._until_either(self._drained, self.drain_s)

    def _end_window(self, stopped: bool) -> None:
        super()._end_window(stopped)
        self._cpu_end_ns = perf_ns()

    def _check_drained(self) -> None:
        if not self.sending and self.measured_open <= 0 and not self._drained.is_set():
            self.end_ns = perf_ns()
            self.filling = False
            self._drained.set()

    async def _lag_monitor(self) -> None:
        period_ns = int(LOOP_LAG_PERIOD_S * 1e9)
        while True:
            before = perf_ns()
            await asyncio.sleep(LOOP_LAG_PERIOD_S)
            now = perf_ns()
            if self.measure_from <= before and not self.end_ns:
                self.loop_lag.record(max(0, now - before - period_ns) // 1000)

    # -- requests ----------------------------------------------------------------------------------

    def _start(self, conn: StreamConnection, start_ns: int, measured: bool) -> None:
        index = self.next_index % len(self.llm.requests)
        self.next_index += 1
        self.in_flight += 1
        conn.start(self.llm.requests[index], start_ns, perf_ns(), measured, self.llm.input_tokens[index])

    def _finished(self, conn: StreamConnection, now_ns: int) -> None:
        """Record a finished answer: its tokens for throughput; if measured, its metrics."""
        metrics, failure = None, None
        if conn.status == 200:
            failure = conn.failure()
            if failure is None:
                usage_in, usage_out = conn.usage if conn.usage is not None else (None, None)
                metrics = stream_metrics(conn.start_ns, conn.chunk_ns, usage_out or None,  # 0: count chunks
                                         usage_in if usage_in else conn.input_tokens)
                self.bins.add_tokens(conn.chunk_ns, metrics.output_tokens)
                self.bins.add_request(now_ns, metrics.input_tokens)
        if not conn.measured:
            return
        conn.measured = False
        if metrics is not None:
            self.recorder.record_stream(metrics)
        elif failure is not None:
            self.recorder.record_failure(*failure)
        else:
            self.recorder.record_status(conn.status, conn.error_body)
        self._measured_done()

    def _measured_done(self) -> None:
        self.measured_open -= 1
        self._check_drained()

    def _measured(self, conn: StreamConnection, now_ns: int) -> bool:
        return conn.measured

    def _on_failure_counted(self) -> None:
        self._measured_done()

    async def _connect(self) -> StreamConnection:
        conn = await open_stream_connection(self.target, self.address, self, self.ssl_context,
                                            self.connect_timeout_s)
        self.conns.add(conn)
        return conn

    def _count_failure(self, conn, now_ns: int, kind: str, detail: str) -> None:
        super()._count_failure(conn, now_ns, kind, detail)
        conn.measured = False

    # -- the result --------------------------------------------------------------------------------

    def _open_streams(self) -> None:
        """Content of streams still open counts for throughput up to the window's end (chunks)."""
        if self.bins is None:
            return
        self.end_ns = self.end_ns or perf_ns()
        for conn in list(self.conns):
            if conn.busy and conn.status == 200:  # one token a chunk (no usage yet); the window cuts the rest
                self.bins.add_tokens(conn.chunk_ns, len(conn.chunk_ns))

    def _result(self, stopped: bool, leftovers: tuple[int, int]) -> LlmStepResult:
        bins = self.bins or RateBins(self.measure_from)
        end = self.end_ns or perf_ns()
        window_s = (bins.window_end(end) - bins.start_ns) / 1e9
        cpu0, cpu1 = self._cpu_at_window_start, self._cpu_at_window_end
        wall = max(1e-9, (self._cpu_end_ns - self.measure_from) / 1e9)
        loop_cpu = (cpu1[1] - cpu0[1]) / wall if cpu0 is not None and cpu1 is not None else 0.0
        unsent, incomplete = leftovers
        return build_llm_result(
            self.recorder, bins.rates(end), mode=self.mode, concurrency=self._concurrency(),
            target_rate=self._target_rate(), window_s=window_s, unsent=unsent, incomplete=incomplete,
            schedule_lag=self._schedule_lag(), loop_lag=self.loop_lag, loop_cpu=loop_cpu,
            interrupted=stopped or self.stop.is_set(), targets=self.targets)

    def _schedule_lag(self) -> LatencyHistogram:
        return LatencyHistogram()


class LlmClosedLoop(ConcurrencyWorkers, LlmDriver):
    """`concurrency` streams, each sending its next request as soon as the previous one ends."""

    mode = "closed"

    async def _drive(self, start_ns: int) -> bool:
        self._begin()
        for conn in list(self.conns):
            self._send(conn)
        return await self._wait_window()

    def _send(self, conn: StreamConnection) -> None:
        now = perf_ns()
        self._start(conn, now, self._admit(now))

    def _concurrency(self) -> int:
        return self.concurrency

    def _leftovers(self) -> tuple[int, int]:
        self._open_streams()
        return 0, max(0, self.measured_open)

    def on_response(self, conn: StreamConnection, now_ns: int) -> None:
        self.in_flight -= 1
        self._finished(conn, now_ns)
        if not conn.keep_alive:
            conn.close()  # on_connection_lost opens the replacement
        elif self.filling and not self.closing:
            self._send(conn)

    def _replace_lost_connection(self) -> None:
        if self.filling:
            self._spawn(self._reconnect_worker())

    async def _reconnect_worker(self) -> None:
        while self.filling:
            try:
                conn = await self._connect()
            except (OSError, asyncio.TimeoutError):
                if await self._sleep_until(perf_ns() + int(RECONNECT_BACKOFF_S * 1e9)):
                    return
                continue
            if self.filling:
                self._send(conn)
            return


class LlmOpenLoop(Arrivals, LlmDriver):
    """Requests at a fixed average rate whatever the server does (up to `max_in_flight` at once)."""

    mode = "open"

    def __init__(self, target: LlmTarget, rate: float, *, arrival: str = "poisson", max_in_flight: int = 256,
                 seed: int | None = None, **kwargs):
        super().__init__(target, rate, arrival=arrival, max_in_flight=max_in_flight, seed=seed, **kwargs)
        self.backlog: deque[tuple[int, bool]] = deque()  # (intended send time, measured)
        self.schedule_lag = LatencyHistogram()

    async def _drive(self, start_ns: int) -> bool:
        self._begin()
        self._spawn(self._arrivals(start_ns))
        return await self._wait_window()

    async def _arrivals(self, start_ns: int) -> None:
        next_ns = start_ns
        while self.filling and not self.closing:
            now = perf_ns()
            while next_ns <= now and self.filling:
                self._dispatch(next_ns, now)
                next_ns += self._gap_ns()
            await asyncio.sleep(max(0.0, (next_ns - perf_ns()) / 1e9))

    def _dispatch(self, intended_ns: int, now_ns: int) -> None:
        measured = self._admit(intended_ns)
        if measured:
            self.schedule_lag.record((now_ns - intended_ns) // 1000)
        if self.idle:
            self._start(self.idle.pop(), intended_ns, measured)
        else:
            self.backlog.append((intended_ns, measured))
            self._open_more_connections()

    def _open_more_connections(self) -> None:
        while (not self.closing and self.connecting < len(self.backlog)
               and len(self.conns) + self.connecting < self.max_in_flight):
            self.connecting += 1
            self._spawn(self._open_one())

    async def _open_one(self) -> None:
        try:
            conn = await self._connect()
        except (OSError, asyncio.TimeoutError):
            self.connecting -= 1
            await asyncio.sleep(RECONNECT_BACKOFF_S)
            self._open_more_connections()
            return
        except BaseException:
            self.connecting -= 1
            raise
        self.connecting -= 1
        self.peak_connections = max(self.peak_connections, len(self.conns))
        self._became_idle(conn)

    def _became_idle(self, conn: StreamConnection) -> None:
        if self.backlog and not self.closing:
            intended, measured = self.backlog.popleft()
            self._start(conn, intended, measured)
        else:
            self.idle.append(conn)

    def on_response(self, conn: StreamConnection, now_ns: int) -> None:
        self.in_flight -= 1
        self._finished(conn, now_ns)
        if not conn.keep_alive:
            conn.close()
        else:
            self._became_idle(conn)

    def _leftovers(self) -> tuple[int, int]:
        self._open_streams()
        unsent = sum(1 for _, measured in self.backlog if measured)
        return unsent, max(0, self.measured_open - unsent)

    def _concurrency(self) -> int:
        return self.peak_connections

    def _target_rate(self) -> float | None:
        return self.rate

    def _schedule_lag(self) -> LatencyHistogram:
        return self.schedule_lag


def step_options(duration_s: float | None, requests: int | None, warmup_s: float, timeout_s: float,
                 drain_s: float | None) -> dict:
    """The Driver's keyword arguments for a step of `duration_s` seconds or of `requests` requests
    (then `duration_s`, default an hour, bounds the window)."""
    from jupyter_serving.bench.driver import MAX_DURATION_S

    duration = duration_s if duration_s is not None else (MAX_DURATION_S if requests else None)
    if duration is None:
        raise ValueError("give a duration or a number of requests")
    drain = drain_s if drain_s is not None else min(DEFAULT_DRAIN_S, timeout_s + 1.0)
    return {"duration_s": duration, "warmup_s": warmup_s, "drain_s": drain, "timeout_s": timeout_s,
            "requests": requests}


async def run_llm_step(target: LlmTarget, *, concurrency: int | None = None, rate: float | None = None,
                       duration_s: float | None = 10.0, requests: int | None = None, warmup_s: float = 1.0,
                       timeout_s: float = DEFAULT_TIMEOUT_S, drain_s: float | None = None,
                       connect_timeout_s: float = 5.0, arrival: str = "poisson", max_in_flight: int = 256,
                       seed: int | None = None, targets: dict | None = None, ssl_context=None,
                       stop: asyncio.Event | None = None) -> LlmStepResult:
    """One closed-loop level (`concurrency`) or one open-loop rate (`rate`), in the running loop."""
    if (concurrency is None) == (rate is None):
        raise ValueError("give either a concurrency or a rate")
    common = dict(step_options(duration_s, requests, warmup_s, timeout_s, drain_s),
                  connect_timeout_s=connect_timeout_s, ssl_context=ssl_context, stop=stop, targets=targets)
    if concurrency is not None:
        driver: LlmDriver = LlmClosedLoop(target, concurrency, **common)
    else:
        driver = LlmOpenLoop(target, rate, arrival=arrival, max_in_flight=max_in_flight, seed=seed, **common)
    return await driver.run()


__all__ = ["DEFAULT_TIMEOUT_S", "LlmClosedLoop", "LlmDriver", "LlmOpenLoop", "run_llm_step", "step_options"]
