"""Cancelling an endpoint's config update: the Serving UI's "Cancel update" (Databricks has no public API
for it; the local backend answers `POST /api/2.0/serving-endpoints/{name}/config:cancel`).

The cancel is written to state.db first and only then shown (a failed write, 503, changes nothing and the
update goes on); then the update's deployment is cancelled and the model servers it started are stopped,
never the serving ones. Afterwards `pending_config` is gone and `state.config_update` is UPDATE_CANCELED;
the serving config keeps serving (READY if it was). A cancelled create (or start), which had nothing
serving, shows the cancelled config as `config`, NOT_READY, like a failed create.

A deploy cannot outlive its cancel: the cancel holds `Engine.switching` while it is written, and a deploy
makes its config the serving one only under that lock and only while `Engine.wants` it (its config is
still the pending one), so a config being cancelled never starts serving; nor does a cancelled deploy
report a failure. Its runtimes stay in `Deployer.pending` until it has stopped them, so the cancel finds
every one it started.
"""
from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING

from jupyter_serving.local.states import (
    ABORTED,
    IN_PROGRESS,
    NOT_READY,
    UPDATE_CANCELED,
    StateError,
    entity_state,
)

if TYPE_CHECKING:
    from jupyter_serving.local.engine import Engine

CANCELED_MESSAGE = "The config update was canceled before this entity was deployed."


def _refuse_unless_updating(doc: dict, pending: dict | None = None) -> None:
    updating = doc["state"].get("config_update") == IN_PROGRESS and doc.get("pending_config") is not None
    if not updating or (pending is not None and doc.get("pending_config") is not pending):
        raise StateError(f"Endpoint '{doc['name']}' has no config update in progress (state.config_update is "
                         f"{doc['state'].get('config_update')}); there is nothing to cancel.", "INVALID_STATE")


def _restoring(engine: Engine, doc: dict) -> bool:
    """Whether the serving config is still being brought back after a backend restart (the task that
    will then deploy the pending config is restoring it now, and must go on doing so)."""
    config = doc.get("config")
    return config is not None and bool(engine.deployer.pending(doc["id"], config["config_version"]))


def _changes(engine: Engine, doc: dict, pending: dict, restoring: bool) -> dict:
    """What the endpoint document says once the update of `pending` is cancelled."""
    state = {**doc["state"], "config_update": UPDATE_CANCELED}
    changes = {"pending_config": None, "state": state,
               "_last_version": max(doc.get("_last_version", 0), pending["config_version"])}
    if not engine.runtimes.get(doc["name"]) and not restoring:  # nothing serves: show what was cancelled
        canceled = copy.deepcopy(pending)
        canceled.pop("start_time", None)
        for entity in canceled["served_entities"]:
            entity["state"] = entity_state(ABORTED, CANCELED_MESSAGE)
        changes["config"] = canceled
        state["ready"] = NOT_READY
    return changes


async def cancel_update(engine: Engine, name: str) -> dict:
    """Cancel the config update in progress on endpoint `name` (400 INVALID_STATE when there is none)."""
    doc = engine.get(name)
    _refuse_unless_updating(doc)
    async with engine.switching:  # no deploy makes `pending` serving while the cancel is written
        _refuse_unless_updating(doc)
        pending = doc["pending_config"]
        restoring = _restoring(engine, doc)
        await engine.commit(doc, lambda: _refuse_unless_updating(doc, pending),
                            **_changes(engine, doc, pending, restoring))
    task = engine.updates.get(name)
    if task is not None and not restoring:  # restoring: the task finds `pending` gone and deploys nothing
        task.cancel()
    for rt in engine.deployer.pending(doc["id"], pending["config_version"]):
        rt.status = "stopped"
        await rt.server.stop()
    if task is not None and not restoring:
        await asyncio.gather(task, return_exceptions=True)
    return doc
