"""Monitoring: watch the serving model-server processes, restart one that exited on its own.

The watch loop also hands idle scale-to-zero entities to `scale_to_zero`. Restarts retry with
exponential backoff until the server answers again (or the entity stops being wanted).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from jupyter_serving.local import scale_to_zero
from jupyter_serving.local.deploy import MODEL_LOAD_TIMEOUT_S
from jupyter_serving.local.runtime import EntityRuntime
from jupyter_serving.local.states import CREATING, DEPLOYED, RECOVERING
from jupyter_serving.local.supervisor import ModelServerFailed

if TYPE_CHECKING:
    from jupyter_serving.local.engine import Engine

log = logging.getLogger("jupyter_serving.local")

POLL_S = 0.25
MAX_BACKOFF_S = 30.0


class Monitor:
    def __init__(self, engine: Engine):
        self.engine = engine

    async def watch(self) -> None:
        """Check the model servers every POLL_S seconds until cancelled."""
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.check()
            except Exception:  # a monitor bug must not stop crash recovery for everyone
                log.exception("monitor loop error")

    async def check(self) -> None:
        now = time.monotonic()
        for runtimes in list(self.engine.runtimes.values()):
            for rt in list(runtimes.values()):
                if rt.status == "ready" and not rt.server.running() and not rt.server.expected_exit:
                    self._recover(rt)
                elif scale_to_zero.is_idle(rt, now, self.engine.idle_timeout_s):
                    await scale_to_zero.scale_down(self.engine, rt)

    def _recover(self, rt: EntityRuntime) -> None:
        code = rt.server.proc.returncode if rt.server.proc else None
        log.warning("endpoint %s entity %s: model server exited (code %s); restarting", rt.endpoint, rt.name, code)
        rt.status = "recovering"
        rt.ready.clear()
        self.engine.background(self.restart(rt, f"The model server exited (code {code}); restarting it."))

    async def restart(self, rt: EntityRuntime, why: str) -> None:
        """Start the entity's model server again (it is 'starting' or 'recovering') until it answers."""
        backoff = 1.0
        while rt.status in ("starting", "recovering"):
            await self.engine.set_entity_state(rt, RECOVERING if rt.status == "recovering" else CREATING, why)
            if rt.status not in ("starting", "recovering"):
                return
            rt.server.spawn()
            try:
                await rt.server.wait_ready(MODEL_LOAD_TIMEOUT_S)
            except ModelServerFailed as exc:
                log.warning("endpoint %s entity %s: restart failed: %s", rt.endpoint, rt.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if rt.status not in ("starting", "recovering"):  # stopped meanwhile (deleted, stopped)
                await rt.server.stop()
                return
            rt.mark_ready()
            await self.engine.set_entity_state(rt, DEPLOYED, "")
            return
