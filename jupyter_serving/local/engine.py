"""The serving engine: endpoint documents, their state machine, and the model servers behind them.

State is reported exactly as Databricks does: `state.ready` (READY / NOT_READY), `state.config_update`
(NOT_UPDATING / IN_PROGRESS / UPDATE_FAILED), `pending_config` while an update runs, and per served
entity `state.deployment` + `deployment_state_message`. An update deploys the new config beside the
old one and swaps only when every new entity answers, so the old config serves until then and stays
serving when the update fails.
"""
from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from ..localctl import Paths
from ..rules import RESOURCE_CONFLICT, RuleViolation, entity_concurrency
from ..workloads import find_workload_type
from .registry import Registry
from .store import Store
from .supervisor import ModelServer, ModelServerFailed

log = logging.getLogger("jupyter_serving.local")

READY, NOT_READY = "READY", "NOT_READY"
NOT_UPDATING, IN_PROGRESS, UPDATE_FAILED = "NOT_UPDATING", "IN_PROGRESS", "UPDATE_FAILED"
CREATING, DEPLOYED, FAILED, ABORTED, RECOVERING = (
    "DEPLOYMENT_CREATING", "DEPLOYMENT_READY", "DEPLOYMENT_FAILED", "DEPLOYMENT_ABORTED", "DEPLOYMENT_RECOVERING",
)
SUSPENDED, NOT_SUSPENDED = "SUSPENDED", "NOT_SUSPENDED"

MODEL_LOAD_TIMEOUT_S = 180.0


def now_ms() -> int:
    return int(time.time() * 1000)


def spec_key(entity: dict) -> str:
    """What makes two served entities the same deployment (so an unchanged one is not restarted)."""
    relevant = {k: entity.get(k) for k in ("name", "entity_name", "entity_version", "workload_type",
                                           "environment_vars")}
    relevant["threads"] = entity_concurrency(entity)[1]
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


class StateError(RuleViolation):
    """A request that the endpoint's current state forbids (400 INVALID_STATE or 409 conflict)."""


@dataclass
class EntityRuntime:
    """One served entity's live side: its model server and its concurrency gate."""

    endpoint: str
    spec: dict
    server: ModelServer
    key: str
    limit: int
    scale_to_zero: bool
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    status: str = "starting"  # starting | ready | recovering | scaled_to_zero | draining | stopped
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.spec["name"]


class Engine:
    def __init__(self, paths: Paths, cloud: str, idle_timeout_s: float, admin_user: str):
        self.paths = paths
        self.cloud = cloud
        self.idle_timeout_s = idle_timeout_s
        self.admin_user = admin_user
        self.store = Store(paths.state_db)
        self.registry = Registry(paths.mlflow_uri, paths.artifacts)
        self.endpoints: dict[str, dict] = {}
        self.runtimes: dict[str, dict[str, EntityRuntime]] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.session: aiohttp.ClientSession | None = None
        self._monitor: asyncio.Task | None = None
        self._starting: dict[tuple[str, str], EntityRuntime] = {}  # runtimes of configs not yet serving
        self.gpu_count = _detect_gpus()
        self.workspace_id = self.store.setting("workspace_id") or str(uuid.uuid4().int)[:16]
        self.store.set_setting("workspace_id", self.workspace_id)

    # lifecycle ---------------------------------------------------------------------------------
    async def startup(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None),
            auto_decompress=False,
        )
        await asyncio.to_thread(self.registry.initialize)
        for doc in self.store.load_endpoints():
            self.endpoints[doc["name"]] = doc
            self._restore(doc)
        self._monitor = asyncio.create_task(self._monitor_loop())

    async def shutdown(self) -> None:
        if self._monitor:
            self._monitor.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        for runtimes in self.runtimes.values():
            for rt in runtimes.values():
                await rt.server.stop()
        for rt in self._pending_runtimes():
            await rt.server.stop()
        if self.session:
            await self.session.close()
        self.store.close()

    def _restore(self, doc: dict) -> None:
        """After a backend restart: bring the serving config back, then resume an interrupted update."""
        if doc["state"].get("suspend") == SUSPENDED:
            return
        config, pending = doc.get("config"), doc.get("pending_config")
        serving = config is not None and any(
            e["state"]["deployment"] in (DEPLOYED, RECOVERING) for e in config["served_entities"])
        if serving:
            for entity in config["served_entities"]:
                entity["state"] = _entity_state(RECOVERING, "Restarting the model server after a backend restart.")
            doc["state"]["ready"] = NOT_READY
            self.store.save_endpoint(doc)
        self.tasks[doc["name"]] = asyncio.create_task(self._restore_then_update(doc["name"], serving, pending))

    async def _restore_then_update(self, name: str, serving: bool, pending: dict | None) -> None:
        if serving:
            await self._deploy(name, self.endpoints[name]["config"], restoring=True)
        if pending is not None and name in self.endpoints:
            await self._deploy(name, pending)

    # queries on state --------------------------------------------------------------------------
    def get(self, name: str) -> dict:
        doc = self.endpoints.get(name)
        if doc is None:
            raise RuleViolation(f"Endpoint '{name}' does not exist.", "RESOURCE_DOES_NOT_EXIST")
        return doc

    def entity_names(self, doc: dict) -> list[str]:
        names = [e["name"] for e in (doc.get("config") or {}).get("served_entities", [])]
        names += [e["name"] for e in (doc.get("pending_config") or {}).get("served_entities", [])]
        return names

    # mutations ---------------------------------------------------------------------------------
    def create(self, body: dict, config: dict, user: str) -> dict:
        name = body["name"]
        if name in self.endpoints:
            raise RuleViolation(f"Endpoint with name '{name}' already exists.", "RESOURCE_ALREADY_EXISTS")
        self._check_models(config)
        ts = now_ms()
        pending = self._stamp_config(config, 1, user, ts)
        doc = {
            "name": name,
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
            "acl": [],
            "task": None,
        }
        self.endpoints[name] = doc
        self.store.save_endpoint(doc)
        self.tasks[name] = asyncio.create_task(self._deploy(name, pending))
        return doc

    def update_config(self, name: str, config: dict, user: str) -> dict:
        doc = self.get(name)
        self._refuse_if_updating(doc, "update its config")
        if doc["state"].get("suspend") == SUSPENDED:
            raise StateError(f"Endpoint '{name}' is stopped; start it before updating its config.", "INVALID_STATE")
        self._check_models(config)
        version = self._next_version(doc)
        doc["pending_config"] = self._stamp_config(config, version, user, now_ms())
        doc["state"]["config_update"] = IN_PROGRESS
        doc["last_updated_timestamp"] = now_ms()
        self.store.save_endpoint(doc)
        self.tasks[name] = asyncio.create_task(self._deploy(name, doc["pending_config"]))
        return doc

    async def delete(self, name: str) -> None:
        self.get(name)
        task = self.tasks.pop(name, None)
        if task:
            task.cancel()
        del self.endpoints[name]
        self.store.delete_endpoint(name)
        for rt in self.runtimes.pop(name, {}).values():
            await rt.server.stop()
        for rt in self._pending_runtimes(name):
            await rt.server.stop()

    async def stop(self, name: str) -> dict:
        doc = self.get(name)
        self._refuse_if_updating(doc, "stop it")
        if doc["state"].get("suspend") == SUSPENDED:
            return doc
        for rt in self.runtimes.pop(name, {}).values():
            rt.status = "stopped"
            await rt.server.stop()
        doc["state"] = {"ready": NOT_READY, "config_update": NOT_UPDATING, "suspend": SUSPENDED}
        for entity in (doc.get("config") or {}).get("served_entities", []):
            entity["state"] = _entity_state(ABORTED, "The endpoint is stopped; start it to serve again.")
        doc["last_updated_timestamp"] = now_ms()
        self.store.save_endpoint(doc)
        return doc

    def start(self, name: str, user: str) -> dict:
        doc = self.get(name)
        if doc["state"].get("suspend") != SUSPENDED:
            raise StateError(f"Endpoint '{name}' is not stopped; there is nothing to start.", "INVALID_STATE")
        if not doc.get("config"):
            raise StateError(f"Endpoint '{name}' has no config to start.", "INVALID_STATE")
        version = self._next_version(doc)
        doc["pending_config"] = self._stamp_config(_strip_states(doc["config"]), version, user, now_ms())
        doc["state"] = {"ready": NOT_READY, "config_update": IN_PROGRESS, "suspend": NOT_SUSPENDED}
        doc["last_updated_timestamp"] = now_ms()
        self.store.save_endpoint(doc)
        self.tasks[name] = asyncio.create_task(self._deploy(name, doc["pending_config"]))
        return doc

    def save(self, doc: dict) -> None:
        doc["last_updated_timestamp"] = now_ms()
        self.store.save_endpoint(doc)

    # helpers -----------------------------------------------------------------------------------
    def _refuse_if_updating(self, doc: dict, action: str) -> None:
        if doc["state"]["config_update"] == IN_PROGRESS:
            raise StateError(
                f"Endpoint '{doc['name']}' has an update in progress; wait until it finishes "
                f"(state.config_update NOT_UPDATING) before you {action}.",
                RESOURCE_CONFLICT,
            )

    def _next_version(self, doc: dict) -> int:
        return max((doc.get("config") or {}).get("config_version", 0), doc.get("_last_version", 0)) + 1

    def _check_models(self, config: dict) -> None:
        for entity in config["served_entities"]:
            self.registry.resolve(entity["entity_name"], entity["entity_version"])

    def _stamp_config(self, config: dict, version: int, user: str, ts: int) -> dict:
        config = copy.deepcopy(config)
        config["config_version"] = version
        config["start_time"] = ts
        for entity in config["served_entities"]:
            entity["creator"] = user
            entity["creation_timestamp"] = ts
            entity["state"] = _entity_state(CREATING, "Creating the model server.")
        return config

    def _pending_runtimes(self, name: str | None = None) -> list[EntityRuntime]:
        return [rt for (ep, _), rt in list(self._starting.items()) if name is None or ep == name]

    def _entity_env(self, spec: dict) -> tuple[dict[str, str], str]:
        env = {k: str(v) for k, v in (spec.get("environment_vars") or {}).items()}
        env["MLFLOW_TRACKING_URI"] = self.paths.mlflow_uri
        env["MLFLOW_REGISTRY_URI"] = self.paths.mlflow_uri
        wt = find_workload_type(self.cloud, spec.get("workload_type") or "CPU")
        if wt is None or not wt.is_gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""
            return env, ""
        if self.gpu_count >= wt.gpu_count:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(wt.gpu_count))
            return env, f"Running on {wt.gpu_count} local GPU(s) for {wt.name}."
        env["CUDA_VISIBLE_DEVICES"] = ""
        return env, (f"{wt.name} asks for {wt.gpu_count}×{wt.gpu}; this machine has "
                     f"{self.gpu_count} GPU(s), so the model runs on CPU.")

    # deployment --------------------------------------------------------------------------------
    async def _deploy(self, name: str, target: dict, restoring: bool = False) -> None:
        """Bring up every entity of `target`, then make it the serving config (or fail, keeping the old)."""
        doc = self.endpoints[name]
        version = target["config_version"]
        old = self.runtimes.get(name, {}) if not restoring else {}
        new: dict[str, EntityRuntime] = {}
        started: list[EntityRuntime] = []
        for entity in target["served_entities"]:
            key = spec_key(entity)
            reuse = next((rt for rt in old.values() if rt.key == key), None)
            if reuse is not None:
                new[entity["name"]] = reuse
                reuse.spec = _spec(entity)
                reuse.limit = entity_concurrency(entity)[1]
                reuse.scale_to_zero = bool(entity.get("scale_to_zero_enabled"))
                entity["state"] = copy.deepcopy(_entity_doc(doc, reuse.name, "config") or {}).get(
                    "state", _entity_state(DEPLOYED, ""))
                continue
            rt = self._new_runtime(name, entity)
            new[entity["name"]] = rt
            started.append(rt)
            self._starting[(name, f"{entity['name']}@{version}")] = rt
        failures: list[str] = []
        try:
            results = await asyncio.gather(
                *(self._bring_up(doc, target, rt, version) for rt in started), return_exceptions=True)
            for rt, result in zip(started, results):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    failures.append(f"{rt.name}: {result}")
        except asyncio.CancelledError:
            for rt in started:
                await rt.server.stop()
            raise
        finally:
            for rt in started:
                self._starting.pop((name, f"{rt.name}@{version}"), None)
        if name not in self.endpoints:  # deleted meanwhile
            for rt in started:
                await rt.server.stop()
            return
        doc["_last_version"] = max(doc.get("_last_version", 0), version)
        if failures:
            for rt in started:
                rt.status = "stopped"
                await rt.server.stop()
            if restoring:
                doc["state"]["ready"] = NOT_READY
            elif old:
                doc["pending_config"] = None  # the old config keeps serving
                doc["state"]["config_update"] = UPDATE_FAILED
            else:  # nothing was serving (a create, or a start after stop): show the failed config
                failed = copy.deepcopy(target)
                failed.pop("start_time", None)
                doc["config"] = failed
                doc["pending_config"] = None
                doc["state"].update(ready=NOT_READY, config_update=UPDATE_FAILED)
            log.warning("endpoint %s: config version %s failed: %s", name, version, "; ".join(failures))
            self.save(doc)
            return
        # Switch traffic to the new servers first, then drain the old ones: no request sees a gap.
        self.runtimes[name] = new
        for rt in old.values():
            if rt not in new.values():
                asyncio.create_task(self._drain_and_stop(rt))
        serving = copy.deepcopy(target)
        serving.pop("start_time", None)
        doc["config"] = serving
        doc["state"]["ready"] = READY
        if not restoring:  # a restore leaves config_update to the interrupted update that resumes next
            doc["pending_config"] = None
            doc["state"]["config_update"] = NOT_UPDATING
        self.save(doc)

    async def _drain_and_stop(self, rt: EntityRuntime, grace_s: float = 60.0) -> None:
        """Stop a server that no longer receives traffic once its in-flight requests have finished."""
        rt.status = "draining"
        deadline = time.monotonic() + grace_s
        while rt.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        rt.status = "stopped"
        await rt.server.stop()

    def _new_runtime(self, endpoint: str, entity: dict) -> EntityRuntime:
        limit = entity_concurrency(entity)[1]
        spec = _spec(entity)
        env, _ = self._entity_env(spec)
        log_path = self.paths.logs / endpoint / f"{entity['name']}.log"
        server = ModelServer("", log_path, threads=max(limit, 4), env=env)
        return EntityRuntime(endpoint, spec, server, spec_key(entity), limit,
                             bool(entity.get("scale_to_zero_enabled")))

    async def _bring_up(self, doc: dict, target: dict, rt: EntityRuntime, version: int) -> None:
        lines: list[str] = []

        def note(msg: str) -> None:
            lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")

        entity = next(e for e in target["served_entities"] if e["name"] == rt.name)
        try:
            note(f"Resolving {rt.spec['entity_name']} version {rt.spec['entity_version']} in the MLflow registry.")
            path = await asyncio.to_thread(self.registry.resolve, rt.spec["entity_name"], rt.spec["entity_version"])
            rt.server.model_uri = path
            note(f"Model files: {path}")
            _, placement = self._entity_env(rt.spec)
            if placement:
                note(placement)
            offset = rt.server.log_path.stat().st_size if rt.server.log_path.exists() else 0
            rt.server.spawn()
            note(f"Started MLflow scoring server (pid {rt.server.pid}, port {rt.server.port}, "
                 f"{rt.limit} concurrent requests).")
            try:
                took = await rt.server.wait_ready(self.session, MODEL_LOAD_TIMEOUT_S)
            finally:
                lines.append(_read_from(rt.server.log_path, offset).rstrip())
            note(f"Model server ready after {took:.1f} s.")
            rt.status = "ready"
            rt.ready.set()
            rt.last_used = time.monotonic()
            entity["state"] = _entity_state(DEPLOYED, placement)
        except (ModelServerFailed, RuleViolation) as exc:
            note(f"FAILED: {exc}")
            reason = _last_error_line("\n".join(lines)) or str(exc)
            entity["state"] = _entity_state(FAILED, f"Failed to deploy: {reason} See the build logs.")
            raise ModelServerFailed(reason) from exc
        finally:
            self.store.save_build_log(doc["name"], rt.name, version, "\n".join(lines) + "\n")
            self.store.save_endpoint(doc)

    # serving-time lifecycle: crashes, scale to zero, cold starts --------------------------------
    async def ensure_ready(self, rt: EntityRuntime, timeout: float) -> None:
        if rt.ready.is_set():
            return
        if rt.status == "scaled_to_zero":
            async with rt.start_lock:
                if rt.status == "scaled_to_zero":
                    rt.status = "starting"
                    asyncio.create_task(self._restart(rt, "Cold start after scale to zero."))
        await asyncio.wait_for(rt.ready.wait(), timeout)

    async def _restart(self, rt: EntityRuntime, why: str) -> None:
        backoff = 1.0
        while rt.status in ("starting", "recovering"):
            self._set_entity_state(rt, RECOVERING if rt.status == "recovering" else CREATING, why)
            rt.server.spawn()
            try:
                await rt.server.wait_ready(self.session, MODEL_LOAD_TIMEOUT_S)
            except ModelServerFailed as exc:
                log.warning("endpoint %s entity %s: restart failed: %s", rt.endpoint, rt.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            rt.status = "ready"
            rt.last_used = time.monotonic()
            rt.ready.set()
            self._set_entity_state(rt, DEPLOYED, "")
            return

    def _set_entity_state(self, rt: EntityRuntime, deployment: str, message: str) -> None:
        doc = self.endpoints.get(rt.endpoint)
        if doc is None:
            return
        entity = _entity_doc(doc, rt.name, "config")
        if entity is not None:
            entity["state"] = _entity_state(deployment, message)
        if all(self.runtimes.get(rt.endpoint, {}).get(e["name"]) is not None
               and self.runtimes[rt.endpoint][e["name"]].status in ("ready", "scaled_to_zero")
               for e in (doc.get("config") or {}).get("served_entities", [])) and doc["config"]:
            doc["state"]["ready"] = READY
        self.store.save_endpoint(doc)

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                await self._check_runtimes()
            except Exception:  # a monitor bug must not stop crash recovery for everyone
                log.exception("monitor loop error")

    async def _check_runtimes(self) -> None:
        now = time.monotonic()
        for runtimes in list(self.runtimes.values()):
            for rt in list(runtimes.values()):
                if rt.status == "ready" and not rt.server.running() and not rt.server.expected_exit:
                    code = rt.server.proc.returncode if rt.server.proc else None
                    log.warning("endpoint %s entity %s: model server exited (code %s); restarting",
                                rt.endpoint, rt.name, code)
                    rt.status = "recovering"
                    rt.ready.clear()
                    asyncio.create_task(self._restart(rt, f"The model server exited (code {code}); restarting it."))
                elif (rt.status == "ready" and rt.scale_to_zero and rt.in_flight == 0
                      and now - rt.last_used > self.idle_timeout_s):
                    rt.status = "scaled_to_zero"
                    rt.ready.clear()
                    await rt.server.stop()
                    self._set_entity_state(rt, DEPLOYED, "Scaled to zero after being idle; the next request "
                                                         "starts the model server (cold start).")


def _entity_state(deployment: str, message: str) -> dict:
    return {"deployment": deployment, "deployment_state_message": message}


def _spec(entity: dict) -> dict:
    """A served entity as configured: without its reported deployment state."""
    return {k: copy.deepcopy(v) for k, v in entity.items() if k != "state"}


def _strip_states(config: dict) -> dict:
    return {**copy.deepcopy(config), "served_entities": [_spec(e) for e in config["served_entities"]]}


def _entity_doc(doc: dict, entity_name: str, which: str) -> dict | None:
    for entity in (doc.get(which) or {}).get("served_entities", []):
        if entity["name"] == entity_name:
            return entity
    return None


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")[-20000:]
    except FileNotFoundError:
        return ""


def _last_error_line(text: str) -> str:
    """The most telling line of a failed model load: the final exception message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line):
            return line[:300]
    return ""


def _detect_gpus() -> int:
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


__all__ = ["Engine", "EntityRuntime", "StateError"]
