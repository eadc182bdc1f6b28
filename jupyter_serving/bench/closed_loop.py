"""`ClosedLoop`: `concurrency` workers, each sending its next request as soon as the previous one answers."""
from __future__ import annotations

import asyncio

from jupyter_serving.bench.client import Connection, perf_ns
from jupyter_serving.bench.driver import RECONNECT_BACKOFF_S, Driver
from jupyter_serving.bench.loop_shapes import ConcurrencyWorkers


class ClosedLoop(ConcurrencyWorkers, Driver):
    """`concurrency` workers, each sending its next request as soon as the previous one answers."""

    mode = "closed"

    async def _drive(self, start_ns: int) -> bool:
        for conn in list(self.conns):
            self._send(conn)
        return await self._sleep_until(self.measure_until)

    def _send(self, conn: Connection) -> None:
        self.in_flight += 1
        conn.send(self.request, perf_ns())

    def _measured(self, conn: Connection, now_ns: int) -> bool:
        return self.measure_from <= now_ns < self.measure_until

    def _concurrency(self) -> int:
        return self.concurrency

    def on_response(self, conn: Connection, now_ns: int) -> None:
        self.in_flight -= 1
        if self.measure_from <= now_ns < self.measure_until:
            self.answered_in_window += 1
            if conn.status == 200:
                self.successes_in_window += 1
            self.recorder.record_response(conn.status, now_ns - conn.sent_ns, conn.served_model,
                                          conn.error_body)
        if not conn.keep_alive:
            conn.close()  # on_connection_lost opens the replacement
        elif self.sending and now_ns < self.measure_until:
            self._send(conn)
        else:
            self._check_drained()

    def _replace_lost_connection(self) -> None:
        if self.sending:
            self._spawn(self._reconnect_worker())

    async def _reconnect_worker(self) -> None:
        while self.sending:
            try:
                conn = await self._connect()
            except (OSError, asyncio.TimeoutError) as exc:
                now = perf_ns()
                if self.measure_from <= now < self.measure_until:
                    self.recorder.record_failure("connection", str(exc) or type(exc).__name__)
                if await self._sleep_until(now + int(RECONNECT_BACKOFF_S * 1e9)):
                    return
                continue
            if self.sending:
                self._send(conn)
            return
