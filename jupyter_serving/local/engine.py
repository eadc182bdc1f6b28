"""The serving engine: endpoint documents and their state machine.

State is reported exactly as Databricks does (see `states`): `state.ready`, `state.config_update`,
`pending_config` while an update runs, and per served entity `state.deployment` +
`deployment_state_message`. The engine owns the documents and every transition of them; bringing
configs up is `deploy`'s job, watching model servers `monitor`'s, idling them `scale_to_zero`'s.

State that cannot lie:
- A change a caller asks for is written to state.db first (in a thread, one writer at a time, short
  busy timeout) and only then shown by the API; when the write fails the caller gets 503
  TEMPORARILY_UNAVAILABLE and nothing changed. Transitions that deployment and monitoring report
  (a server came up, failed, scaled to zero) are facts already: they are shown at once and written
  through in the background, retried until state.db takes them.
- Deletion is authoritative: it leaves a tombstone for the endpoint's id (see `store`), cancels its
  deployment and stops its model servers; no later save of that id is ever written.
- Logs and build logs belong to an endpoint id, so a recreated endpoint with an old name starts empty.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path

from jupyter_serving.core.rules import (
    RESOURCE_CONFLICT,
    RuleViolation,
    is_external,
    normalize_config,
    validate_ai_gateway,
    validate_config_change,
    validate_endpoint_name,
    validate_rate_limits,
)
from jupyter_serving.datadir import Paths
from jupyter_serving.local.cancel import cancel_update
from jupyter_serving.local.deploy import Deployer
from jupyter_serving.local.external import prune_keys, take_keys
from jupyter_serving.local.monitor import Monitor
from jupyter_serving.local.placement import detect_gpus
from jupyter_serving.local.registry import Registry
from jupyter_serving.local.runtime import EntityRuntime, strip_states
from jupyter_serving.local.secret_store import SecretStore
from jupyter_serving.local.states import (
    ABORTED,
    CREATING,
    DEPLOYED,
    IN_PROGRESS,
    NOT_READY,
    NOT_SUSPENDED,
    NOT_UPDATING,
    READY,
    RECOVERING,
    SUSPENDED,
    UPDATE_FAILED,
    StateError,
    entity_doc,
    entity_state,
    missing_endpoint,
)
from jupyter_serving.local.store import Store, StoreUnavailable

log = logging.getLogger("jupyter_serving.local")


def now_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    def __init__(self, paths: Paths, cloud: str, idle_timeout_s: float, admin_user: str):
        self.paths = paths
        self.cloud = cloud
        self.idle_timeout_s = idle_timeout_s
        self.admin_user = admin_user
        self.store = Store(paths.state_db)
        self.secrets = SecretStore(paths.secrets_db)  # the Secrets API's, and external models' keys
        self.registry = Registry(paths.mlflow_uri, paths.artifacts)
        self.endpoints: dict[str, dict] = {}
        self.runtimes: dict[str, dict[str, EntityRuntime]] = {}  # the serving runtimes of each endpoint
        self.updates: dict[str, asyncio.Task] = {}  # each endpoint's latest deployment
        self.deployer = Deployer(self)
        self.monitor = Monitor(self)
        self._background: set[asyncio.Task] = set()
        self._write_lock = asyncio.Lock()  # one writer: writes reach state.db in the order they were made
        # Held by a cancel while it is written, and by a deploy while it checks that its config is still
        # wanted and makes it the serving one: a config being cancelled never starts serving.
        self.switching = asyncio.Lock()
        self.gpu_count = detect_gpus()
        self.workspace_id = self.store.setting("workspace_id") or str(uuid.uuid4().int)[:16]
        self.store.set_setting("workspace_id", self.workspace_id)

    # lifecycle ---------------------------------------------------------------------------------
    async def startup(self) -> None:
        self.store.add_token(self.paths.token.read_text().strip(), self.admin_user, True, "local admin", now_ms())
        await asyncio.to_thread(self.registry.initialize)
        for doc in self.store.load_endpoints():
            self.endpoints[doc["name"]] = doc
            await self._restore(doc)
        self.background(self.monitor.watch())

    async def shutdown(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runtimes in self.runtimes.values():
            for rt in runtimes.values():
                await rt.server.stop()
        for rt in self.deployer.pending():
            await rt.server.stop()
        self.store.close()
        self.secrets.close()

    def background(self, coro: Coroutine) -> asyncio.Task:
        """Run `coro` as a task the engine keeps (until done) and cancels at shutdown."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @property
    def unreadable_rows(self) -> int:
        """How many endpoint rows of state.db could not be read at startup (skipped, see backend.log)."""
        return len(self.store.unreadable)

    async def _restore(self, doc: dict) -> None:
        """After a backend restart: bring the serving config back, then resume an interrupted update."""
        if doc["state"].get("suspend") == SUSPENDED:
            return
        config, pending = doc.get("config"), doc.get("pending_config")
        serving = config is not None and any(
            e["state"]["deployment"] in (DEPLOYED, RECOVERING) for e in config["served_entities"])
        if serving:
            for entity in config["served_entities"]:
                entity["state"] = entity_state(RECOVERING, "Restarting the model server after a backend restart.")
            doc["state"]["ready"] = NOT_READY
            await self.record(doc)
        self.updates[doc["name"]] = self.background(self._restore_then_update(doc["name"], serving, pending))

    async def _restore_then_update(self, name: str, serving: bool, pending: dict | None) -> None:
        if serving:
            await self.deployer.deploy(name, self.endpoints[name]["config"], restoring=True)
        if pending is not None and self.endpoints.get(name, {}).get("pending_config") is pending:
            await self.deployer.deploy(name, pending)

    # queries -----------------------------------------------------------------------------------
    def get(self, name: str) -> dict:
        doc = self.endpoints.get(name)
        if doc is None:
            raise missing_endpoint(name)
        return doc

    def by_id(self, endpoint_id: str) -> dict | None:
        return next((d for d in self.endpoints.values() if d["id"] == endpoint_id), None)

    def entity_names(self, doc: dict) -> list[str]:
        names = [e["name"] for e in (doc.get("config") or {}).get("served_entities", [])]
        names += [e["name"] for e in (doc.get("pending_config") or {}).get("served_entities", [])]
        return names

    def served_entity(self, doc: dict, entity: str) -> dict:
        """A served entity of the pending or the serving config; RESOURCE_DOES_NOT_EXIST if neither has it."""
        found = entity_doc(doc, entity, "pending_config") or entity_doc(doc, entity, "config")
        if found is None:
            raise RuleViolation(f"Served entity '{entity}' does not exist on endpoint '{doc['name']}'; served "
                                f"entities: {', '.join(self.entity_names(doc)) or 'none'}.",
                                "RESOURCE_DOES_NOT_EXIST")
        return found

    def is_current(self, doc: dict) -> bool:
        """Whether `doc` is still the live document of its endpoint (not deleted, nor replaced by a new one)."""
        return self.endpoints.get(doc["name"]) is doc

    def wants(self, doc: dict, target: dict, restoring: bool) -> bool:
        """Whether a deploy of `target` may still report on `doc`: the endpoint is not deleted, and the
        update is not cancelled (`target` is still its pending config; a restore always may)."""
        return self.is_current(doc) and (restoring or doc.get("pending_config") is target)

    def log_path(self, doc: dict, entity: str) -> Path:
        """The model server log of a served entity: per endpoint id, so a new owner of the name starts empty."""
        return self.paths.logs / doc["id"] / f"{entity}.log"

    # persistence -------------------------------------------------------------------------------
    async def write(self, fn: Callable, *args):
        """Run a store write in a thread, one at a time (StoreUnavailable when state.db refuses it)."""
        async with self._write_lock:
            return await asyncio.to_thread(fn, *args)

    async def _save(self, doc: dict) -> bool:
        async with self._write_lock:
            text = json.dumps(doc)  # on the loop, so that nothing mutates it meanwhile
            return await asyncio.to_thread(self.store.save_endpoint, doc["id"], doc["name"], text)

    async def commit(self, doc: dict, check: Callable[[], None] | None = None, **changes) -> dict:
        """Write `doc` with `changes` first, then show them: on failure (503) nothing changed.

        `check` runs under the writer lock, so it sees every change committed before this one."""
        changes.setdefault("last_updated_timestamp", now_ms())
        async with self._write_lock:
            if check is not None:
                check()
            if self.is_current(doc):
                text = json.dumps({**doc, **changes})
                if await asyncio.to_thread(self.store.save_endpoint, doc["id"], doc["name"], text):
                    doc.update(changes)
                    return doc
        raise missing_endpoint(doc["name"])

    async def record(self, doc: dict) -> None:
        """Write through a transition already shown; retried until state.db takes it (or the endpoint is gone)."""
        delay = 0.2
        while self.is_current(doc):
            try:
                await self._save(doc)
                return
            except StoreUnavailable as exc:
                log.warning("endpoint %s: could not record its state (%s); retrying", doc["name"], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # operations --------------------------------------------------------------------------------
    async def create(self, body: dict, user: str) -> dict:
        """Create an endpoint from a create request's body and start deploying its config."""
        validate_endpoint_name(body.get("name"))
        validate_ai_gateway(body.get("ai_gateway"))
        validate_rate_limits(body.get("rate_limits"))
        config = normalize_config(body.get("config"), self.cloud)
        await self._check_models(config)
        name = body["name"]
        ts = now_ms()
        doc = _new_endpoint(body, self._stamp_config(config, 1, user, ts), user, ts)
        await asyncio.to_thread(take_keys, self.secrets, doc["id"], doc["pending_config"], user == self.admin_user)
        async with self._write_lock:
            if name in self.endpoints:
                # Names are workspace-unique, so everyone hears that it is taken, and nothing else about it.
                raise RuleViolation(f"Endpoint with name '{name}' already exists.", "RESOURCE_ALREADY_EXISTS")
            await asyncio.to_thread(self.store.save_endpoint, doc["id"], name, json.dumps(doc))
            self.endpoints[name] = doc
        self._launch(name, doc["pending_config"])
        return doc

    async def update_config(self, name: str, config: dict, user: str) -> dict:
        """Validate `config` and start deploying it beside the serving one."""
        config = normalize_config(config, self.cloud)
        current = self.get(name)
        self._refuse_if_updating(current, "update its config")
        validate_config_change(current.get("config"), config)
        await self._check_models(config)
        await asyncio.to_thread(take_keys, self.secrets, current["id"], config, user == self.admin_user)
        # The registry lookup yielded the event loop: look at the endpoint as it is now.
        doc = self.get(name)
        self._refuse_if_updating(doc, "update its config")
        if doc["state"].get("suspend") == SUSPENDED:
            raise StateError(f"Endpoint '{name}' is stopped; start it before updating its config.", "INVALID_STATE")
        await self.commit(doc, lambda: self._refuse_if_updating(doc, "update its config"),
                          pending_config=self._stamp_config(config, self._next_version(doc), user, now_ms()),
                          state={**doc["state"], "config_update": IN_PROGRESS})
        self._launch(name, doc["pending_config"])
        # Sealed API keys of earlier configs (neither serving nor deploying now) go.
        await asyncio.to_thread(prune_keys, self.secrets, doc["id"], doc.get("config"), doc.get("pending_config"))
        return doc

    async def cancel_update(self, name: str) -> dict:
        """Cancel the config update in progress (see `cancel`): written first, then carried out."""
        return await cancel_update(self, name)

    async def delete(self, name: str) -> None:
        """Tombstone the endpoint first, then forget it, cancel its deployment and stop its model servers."""
        doc = self.get(name)
        await self.write(self.store.delete_endpoint, doc["id"], name)
        if self.is_current(doc):
            del self.endpoints[name]
        task = self.updates.pop(name, None)
        if task:
            task.cancel()
        runtimes = [*self.runtimes.pop(name, {}).values(), *self.deployer.pending(doc["id"])]
        for rt in runtimes:
            rt.status = "stopped"
            await rt.server.stop()
        if task:
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self.paths.logs / doc["id"], True)
        await asyncio.to_thread(prune_keys, self.secrets, doc["id"])  # its sealed API keys

    async def stop(self, name: str) -> dict:
        doc = self.get(name)
        self._refuse_if_updating(doc, "stop it")
        if doc["state"].get("suspend") == SUSPENDED:
            return doc
        config = copy.deepcopy(doc.get("config"))
        for entity in (config or {}).get("served_entities", []):
            entity["state"] = entity_state(ABORTED, "The endpoint is stopped; start it to serve again.")
        await self.commit(doc, lambda: self._refuse_if_updating(doc, "stop it"), config=config,
                          state={"ready": NOT_READY, "config_update": NOT_UPDATING, "suspend": SUSPENDED})
        for rt in self.runtimes.pop(name, {}).values():
            rt.status = "stopped"
            await rt.server.stop()
        return doc

    async def start(self, name: str, user: str) -> dict:
        doc = self.get(name)
        if doc["state"].get("suspend") != SUSPENDED:
            raise StateError(f"Endpoint '{name}' is not stopped; there is nothing to start.", "INVALID_STATE")
        if not doc.get("config"):
            raise StateError(f"Endpoint '{name}' has no config to start.", "INVALID_STATE")
        version = self._next_version(doc)
        await self.commit(doc, lambda: self._refuse_if_updating(doc, "start it"),
                          pending_config=self._stamp_config(strip_states(doc["config"]), version, user, now_ms()),
                          state={"ready": NOT_READY, "config_update": IN_PROGRESS, "suspend": NOT_SUSPENDED})
        self._launch(name, doc["pending_config"])
        return doc

    async def update_tags(self, name: str, add: list[dict] | None, delete: list[str] | None) -> list[dict]:
        doc = self.get(name)
        tags = {t["key"]: t.get("value") for t in doc.get("tags", [])}
        for key in delete or []:
            tags.pop(key, None)
        for tag in add or []:
            if not tag.get("key"):
                raise RuleViolation("Every tag needs a non-empty key.")
            tags[tag["key"]] = tag.get("value")
        await self.commit(doc, tags=[{"key": k, "value": v} if v is not None else {"key": k}
                                     for k, v in tags.items()])
        return doc["tags"]

    async def set_ai_gateway(self, name: str, ai_gateway: dict) -> dict:
        doc = self.get(name)
        await self.commit(doc, lambda: validate_ai_gateway(ai_gateway, doc.get("ai_gateway")), ai_gateway=ai_gateway)
        return ai_gateway

    async def set_rate_limits(self, name: str, limits: list[dict] | None) -> list[dict]:
        doc = self.get(name)
        validate_rate_limits(limits)
        await self.commit(doc, rate_limits=list(limits or []))
        return doc["rate_limits"]

    async def set_acl(self, name: str, acl: list[dict]) -> dict:
        return await self.commit(self.get(name), acl=acl)

    async def issue_token(self, user: str, comment: str) -> str:
        """A new access token for `user` (not an admin)."""
        token = "dapi" + secrets.token_hex(16)
        await self.write(self.store.add_token, token, user, False, comment, now_ms())
        return token

    async def save(self, doc: dict) -> None:
        """Write through a transition of deployment or monitoring (already shown)."""
        doc["last_updated_timestamp"] = now_ms()
        await self.record(doc)

    # transitions reported by deployment and monitoring -----------------------------------------
    async def config_serving(self, doc: dict, target: dict, restoring: bool) -> None:
        """Every entity of `target` answers and receives the traffic: it is the serving config."""
        self.show_serving(doc, target, restoring)
        await self.save(doc)

    def show_serving(self, doc: dict, target: dict, restoring: bool) -> None:
        """`config_serving` without the write-through (which the caller does next)."""
        serving = copy.deepcopy(target)
        serving.pop("start_time", None)
        doc["config"] = serving
        doc["state"]["ready"] = READY
        tasks = {rt.task for rt in self.runtimes.get(doc["name"], {}).values()}
        doc["task"] = tasks.pop() if len(tasks) == 1 else None  # what Databricks shows for LLM endpoints
        if not restoring:  # a restore leaves config_update to the interrupted update that resumes next
            doc["pending_config"] = None
            doc["state"]["config_update"] = NOT_UPDATING

    async def config_failed(self, doc: dict, target: dict, restoring: bool, replacing: bool) -> None:
        """`target` failed to come up; `replacing`: another config was serving (and keeps serving)."""
        if restoring:
            doc["state"]["ready"] = NOT_READY
        elif replacing:
            doc["pending_config"] = None
            doc["state"]["config_update"] = UPDATE_FAILED
        else:  # nothing was serving (a create, or a start after stop): show the failed config
            failed = copy.deepcopy(target)
            failed.pop("start_time", None)
            doc["config"] = failed
            doc["pending_config"] = None
            doc["state"].update(ready=NOT_READY, config_update=UPDATE_FAILED)
        await self.save(doc)

    async def set_entity_state(self, rt: EntityRuntime, deployment: str, message: str) -> None:
        """Report a serving entity's deployment state; the endpoint is READY again once all serve."""
        doc = self.endpoints.get(rt.endpoint)
        if doc is None or doc["id"] != rt.endpoint_id:
            return
        entity = entity_doc(doc, rt.name, "config")
        if entity is not None:
            entity["state"] = entity_state(deployment, message)
        if doc["config"] and self._all_serving(doc):
            doc["state"]["ready"] = READY
        await self.record(doc)

    # helpers -----------------------------------------------------------------------------------
    def _all_serving(self, doc: dict) -> bool:
        runtimes = self.runtimes.get(doc["name"], {})
        return all(runtimes.get(e["name"]) is not None and runtimes[e["name"]].status in ("ready", "scaled_to_zero")
                   for e in (doc.get("config") or {}).get("served_entities", []))

    def _launch(self, name: str, target: dict) -> None:
        self.updates[name] = self.background(self.deployer.deploy(name, target))

    def _refuse_if_updating(self, doc: dict, action: str) -> None:
        if doc["state"]["config_update"] == IN_PROGRESS:
            raise StateError(
                f"Endpoint '{doc['name']}' has an update in progress; wait until it finishes "
                f"(state.config_update NOT_UPDATING) before you {action}.",
                RESOURCE_CONFLICT,
            )

    def _next_version(self, doc: dict) -> int:
        return max((doc.get("config") or {}).get("config_version", 0), doc.get("_last_version", 0)) + 1

    async def _check_models(self, config: dict) -> None:
        """Every served model version exists in the registry (looked up off the event loop)."""
        def resolve_all() -> None:
            for entity in config["served_entities"]:
                if not is_external(entity):  # an external model is checked by its provider, when queried
                    self.registry.resolve(entity["entity_name"], entity["entity_version"])

        await asyncio.to_thread(resolve_all)

    def _stamp_config(self, config: dict, version: int, user: str, ts: int) -> dict:
        config = copy.deepcopy(config)
        config["config_version"] = version
        config["start_time"] = ts
        for entity in config["served_entities"]:
            entity["creator"] = user
            entity["creation_timestamp"] = ts
            entity["state"] = entity_state(CREATING, "Creating the model server.")
        return config


def _new_endpoint(body: dict, pending: dict, user: str, ts: int) -> dict:
    """The document of a new endpoint whose first config (`pending`) is being deployed."""
    return {
        "name": body["name"],
        "id": uuid.uuid4().hex,
        "creator": user,
        "creation_timestamp": ts,
        "last_updated_timestamp": ts,
        "state": {"ready": NOT_READY, "config_update": IN_PROGRESS, "suspend": NOT_SUSPENDED},
        "config": None,
        "pending_config": pending,
        "tags": list(body.get("tags") or []),
        "ai_gateway": body.get("ai_gateway"),
        "rate_limits": list(body.get("rate_limits") or []),
        "route_optimized": bool(body.get("route_optimized", False)),
        "description": body.get("description"),
        "budget_policy_id": body.get("budget_policy_id"),
        "email_notifications": body.get("email_notifications"),
        "telemetry_config": body.get("telemetry_config"),
        "acl": [],
        "task": None,
    }


__all__ = ["Engine"]
