"""What the classic and the LLM load generators share about the two shapes of load (mixins of a driver).

`ConcurrencyWorkers`: a closed loop's `concurrency` connections, opened before the step starts.
`Arrivals`: an open loop's arrival process (Poisson or uniform gaps at `rate` per second, at most
`max_in_flight` at once), its pool of idle connections, and what happens when one of them is lost.
"""
from __future__ import annotations

import asyncio
import random


class ConcurrencyWorkers:
    """`concurrency` workers, each on its own connection (opened in `_prepare`)."""

    def __init__(self, target, concurrency: int, **kwargs):
        super().__init__(target, **kwargs)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        self.concurrency = concurrency

    async def _prepare(self) -> None:
        results = await asyncio.gather(*(self._connect() for _ in range(self.concurrency)),
                                       return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure


class Arrivals:
    """Requests at `rate` per second (Poisson or uniform gaps), at most `max_in_flight` at once."""

    def __init__(self, target, rate: float, *, arrival: str, max_in_flight: int, seed: int | None, **kwargs):
        super().__init__(target, **kwargs)
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if arrival not in ("poisson", "uniform"):
            raise ValueError(f"arrival must be 'poisson' or 'uniform', got {arrival!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
        self.rate, self.arrival, self.max_in_flight = float(rate), arrival, max_in_flight
        self.random = random.Random(seed)
        self.idle: list = []
        self.connecting = 0
        self.peak_connections = 0

    async def _prepare(self) -> None:
        # One connection proves the target is reachable; the rest open on demand during warm-up.
        self.idle.append(await self._connect())
        self.peak_connections = 1

    def _gap_ns(self) -> int:
        if self.arrival == "uniform":
            return max(1, round(1e9 / self.rate))
        return max(1, round(self.random.expovariate(self.rate) * 1e9))

    def on_connection_lost(self, conn, exc: Exception | None) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        super().on_connection_lost(conn, exc)

    def _replace_lost_connection(self) -> None:
        self._open_more_connections()
