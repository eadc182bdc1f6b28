"""What the closed- and open-loop drivers share: connections, the timing window, the timeout
watchdog, the CPU snapshot and a shutdown that always closes every connection.

Timeline of a step: connect (fail fast if the target is unreachable), warm-up (sent, not
counted), the measured window, then a bounded drain; connections are always closed on the way
out, also on cancellation. A step therefore never runs longer than
connect_timeout + warmup + duration + drain (+ about a second to close).
"""
from __future__ import annotations

import asyncio
import ssl
import time

from jupyter_serving.bench.client import Connection, client_ssl_context, open_connection, perf_ns
from jupyter_serving.bench.results import StepRecorder, StepResult, build_result
from jupyter_serving.bench.target import Target, resolve

MAX_DURATION_S = 3600.0
MAX_WARMUP_S = 600.0
MAX_DRAIN_S = 60.0
RECONNECT_BACKOFF_S = 0.1
CLOSE_GRACE_S = 1.0


class LoadTestError(RuntimeError):
    """The load test could not run at all (e.g. nothing listens at the target)."""


def _check_bounds(duration_s: float, warmup_s: float, drain_s: float, timeout_s: float) -> None:
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be within (0, {MAX_DURATION_S:g}] seconds, got {duration_s}")
    if not 0 <= warmup_s <= MAX_WARMUP_S:
        raise ValueError(f"warmup must be within [0, {MAX_WARMUP_S:g}] seconds, got {warmup_s}")
    if not 0 <= drain_s <= MAX_DRAIN_S:
        raise ValueError(f"drain must be within [0, {MAX_DRAIN_S:g}] seconds, got {drain_s}")
    if not timeout_s > 0:
        raise ValueError(f"timeout must be positive, got {timeout_s}")


class Driver:
    """What closed and open loop share: connections, timing window, watchdog, shutdown."""

    mode = ""

    def __init__(self, target: Target, *, duration_s: float, warmup_s: float, drain_s: float,
                 timeout_s: float, connect_timeout_s: float, ssl_context: ssl.SSLContext | None,
                 stop: asyncio.Event | None):
        _check_bounds(duration_s, warmup_s, drain_s, timeout_s)
        self.target = target
        self.request = target.request_bytes()
        self.duration_ns = int(duration_s * 1e9)
        self.warmup_ns = int(warmup_s * 1e9)
        self.drain_s = drain_s
        self.timeout_ns = int(timeout_s * 1e9)
        self.connect_timeout_s = connect_timeout_s
        self.ssl_context = client_ssl_context(target, ssl_context)
        self.stop = stop or asyncio.Event()
        self.recorder = StepRecorder()
        self.conns: set[Connection] = set()
        self.in_flight = 0
        self.sending = False
        self.closing = False
        # Far-future defaults: nothing counts until the window is set.
        self.measure_from = self.measure_until = 1 << 62
        self.answered_in_window = 0
        self.successes_in_window = 0
        self._drained = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._cpu_at_window_start: tuple[float, float] | None = None  # (process, thread) CPU s
        self._cpu_at_window_end: tuple[float, float] | None = None
        self.address: tuple[str, int] | None = None

    # -- to be provided by the drivers -----------------------------------------------------------

    async def _prepare(self) -> None: ...

    async def _drive(self, start_ns: int) -> bool:
        """Generate load until the window ends; True if stopped early."""
        raise NotImplementedError

    def _measured(self, conn: Connection, now_ns: int) -> bool:
        raise NotImplementedError

    def _on_failure_counted(self) -> None: ...

    def _leftovers(self) -> tuple[int, int]:
        """(unsent, incomplete) when the run ends."""
        return 0, self.in_flight

    def _concurrency(self) -> int:
        raise NotImplementedError

    def _target_rate(self) -> float | None:
        return None

    # -- the run ---------------------------------------------------------------------------------

    async def run(self) -> StepResult:
        loop = asyncio.get_running_loop()
        stopped = False
        leftovers = (0, 0)
        try:
            try:
                await asyncio.wait_for(self._resolve_and_prepare(loop), self.connect_timeout_s)
            except (OSError, asyncio.TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                raise LoadTestError(f"cannot connect to {self.target.url}: {reason}") from exc
            start = perf_ns()
            self.measure_from = start + self.warmup_ns
            self.measure_until = self.measure_from + self.duration_ns
            self.sending = True
            self._spawn(self._watchdog())
            self._spawn(self._snapshot_cpu_at(self.measure_from))
            stopped = await self._drive(start)
            self._end_window(stopped)
            if not stopped:
                await self._drain()
            leftovers = self._leftovers()  # before closing aborts what is still in flight
        finally:
            await self._close_all()
        return self._result(stopped, leftovers)

    async def _resolve_and_prepare(self, loop) -> None:
        self.address = await resolve(loop, self.target)
        await self._prepare()

    def _end_window(self, stopped: bool) -> None:
        now = perf_ns()
        self.sending = False
        if stopped:
            self.measure_until = min(self.measure_until, now)
        self._cpu_at_window_end = (time.process_time(), time.thread_time())
        self._check_drained()

    def _result(self, stopped: bool, leftovers: tuple[int, int]) -> StepResult:
        window_ns = max(0, self.measure_until - self.measure_from)
        cpu0 = self._cpu_at_window_start
        cpu1 = self._cpu_at_window_end
        cpu_s = loop_s = 0.0
        if cpu0 is not None and cpu1 is not None:
            cpu_s, loop_s = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        unsent, incomplete = leftovers
        return build_result(
            self.recorder, mode=self.mode, concurrency=self._concurrency(),
            target_rate=self._target_rate(), window_s=window_ns / 1e9,
            answered_in_window=self.answered_in_window,
            successes_in_window=self.successes_in_window, unsent=unsent, incomplete=incomplete,
            cpu_s=cpu_s, loop_cpu_s=loop_s, interrupted=stopped)

    async def _snapshot_cpu_at(self, when_ns: int) -> None:
        # thread_time: the generator's own thread, which is what saturates; process_time also
        # counts other threads (a Jupyter kernel's, or a server running in-process).
        await asyncio.sleep(max(0.0, (when_ns - perf_ns()) / 1e9))
        self._cpu_at_window_start = (time.process_time(), time.thread_time())

    async def _sleep_until(self, deadline_ns: int) -> bool:
        """Sleep until `deadline_ns` (perf_counter clock); True if the stop event fired first."""
        delay = (deadline_ns - perf_ns()) / 1e9
        if self.stop.is_set():
            return True
        if delay <= 0:
            return False
        try:
            await asyncio.wait_for(self.stop.wait(), delay)
            return True
        except asyncio.TimeoutError:
            return False

    async def _drain(self) -> None:
        if self.in_flight or not self._drained.is_set():
            try:
                await asyncio.wait_for(self._drained.wait(), self.drain_s)
            except asyncio.TimeoutError:
                pass

    def _check_drained(self) -> None:
        if not self.sending and self.in_flight == 0:
            self._drained.set()

    async def _close_all(self) -> None:
        self.closing = True
        self.sending = False
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE_S)
        conns = list(self.conns)
        for conn in conns:
            conn.close()
        waiting = [c.lost for c in conns if not c.lost.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=CLOSE_GRACE_S)
        for conn in conns:  # a TLS close that did not finish in time: cut it
            if not conn.lost.done() and conn.transport is not None:
                conn.transport.abort()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connect(self) -> Connection:
        # Every connection is registered at once: _close_all cancels the connecting tasks first,
        # then closes whatever is in self.conns, so none can be left open.
        conn = await open_connection(self.target, self.address, self, self.ssl_context,
                                     self.connect_timeout_s)
        self.conns.add(conn)
        return conn

    async def _watchdog(self) -> None:
        """Fail requests that exceed the timeout; one timer for all connections, not one each."""
        period = min(0.25, self.timeout_ns / 4e9)
        while True:
            await asyncio.sleep(period)
            now = perf_ns()
            for conn in list(self.conns):
                if conn.busy and now - conn.sent_ns > self.timeout_ns:
                    conn.busy = False
                    self.in_flight -= 1
                    self._count_failure(conn, now, "timeout",
                                        f"no response within {self.timeout_ns / 1e9:g} s")
                    conn.transport.abort()
            self._check_drained()

    def _count_failure(self, conn: Connection, now_ns: int, kind: str, detail: str) -> None:
        if self._measured(conn, now_ns):
            self.recorder.record_failure(kind, detail)
            self._on_failure_counted()

    # -- ConnectionListener ----------------------------------------------------------------------

    def on_connection_lost(self, conn: Connection, exc: Exception | None) -> None:
        self.conns.discard(conn)
        if conn.busy:
            conn.busy = False
            self.in_flight -= 1
            if self.closing:  # our own shutdown: already counted as incomplete
                return
            kind = "protocol" if conn.status == -1 else "connection"
            detail = "invalid HTTP response" if kind == "protocol" else str(exc or "closed by the server")
            self._count_failure(conn, perf_ns(), kind, detail)
        if not self.closing:
            self._replace_lost_connection()
        self._check_drained()

    def _replace_lost_connection(self) -> None: ...
