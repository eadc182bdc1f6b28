"""Scale to zero: stop an idle entity's model server, and start it again on the next request (cold start)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jupyter_serving.local.runtime import EntityRuntime
from jupyter_serving.local.states import DEPLOYED

if TYPE_CHECKING:
    from jupyter_serving.local.engine import Engine

SCALED_DOWN = "Scaled to zero after being idle; the next request starts the model server (cold start)."
COLD_START = "Cold start after scale to zero."


def is_idle(rt: EntityRuntime, now: float, idle_timeout_s: float) -> bool:
    """Whether a scale-to-zero entity has served nothing for longer than the idle timeout."""
    return (rt.status == "ready" and rt.scale_to_zero and rt.in_flight == 0
            and now - rt.last_used > idle_timeout_s)


async def scale_down(engine: Engine, rt: EntityRuntime) -> None:
    rt.status = "scaled_to_zero"
    rt.ready.clear()
    await rt.server.stop()
    await engine.set_entity_state(rt, DEPLOYED, SCALED_DOWN)


async def ensure_ready(engine: Engine, rt: EntityRuntime, timeout: float) -> None:
    """Wait until the entity can serve: cold-start it when scaled to zero, or wait for its recovery.

    Raises asyncio.TimeoutError after `timeout` seconds."""
    if rt.ready.is_set():
        return
    if rt.status == "scaled_to_zero":
        async with rt.start_lock:
            if rt.status == "scaled_to_zero":
                rt.status = "starting"
                engine.background(engine.monitor.restart(rt, COLD_START))
    await asyncio.wait_for(rt.ready.wait(), timeout)
