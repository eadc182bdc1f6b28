"""Deployment: bring up a config's served entities beside the serving ones, switch traffic, drain the old.

An update deploys the new config beside the old one and swaps only when every new entity answers, so
the old config serves until then and stays serving when the update fails. Entities whose deployment
did not change (same `spec_key`) keep their model server. What the endpoint document then says is the
engine's business (`Engine.config_serving` / `Engine.config_failed`).
"""
from __future__ import annotations

import asyncio
import copy
import functools
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_serving.core.rules import RuleViolation, entity_concurrency, is_external
from jupyter_serving.local.external import ExternalServer, describe, key_source, resolve_api_key
from jupyter_serving.local.placement import entity_env
from jupyter_serving.local.registry import read_model_metadata
from jupyter_serving.local.runtime import EntityRuntime, entity_spec, spec_key
from jupyter_serving.local.states import DEPLOYED, FAILED, entity_doc, entity_state
from jupyter_serving.local.store import StoreUnavailable
from jupyter_serving.local.supervisor import ModelServer, ModelServerFailed

if TYPE_CHECKING:
    from jupyter_serving.local.engine import Engine

log = logging.getLogger("jupyter_serving.local")

MODEL_LOAD_TIMEOUT_S = 180.0
DRAIN_GRACE_S = 60.0


class Deployer:
    """Brings configs up for the engine; keeps the runtimes of configs that are not serving yet."""

    def __init__(self, engine: Engine):
        self.engine = engine
        # runtimes of configs not yet serving, by (endpoint id, entity@version)
        self._starting: dict[tuple[str, str], EntityRuntime] = {}

    def pending(self, endpoint_id: str | None = None, version: int | None = None) -> list[EntityRuntime]:
        """Runtimes still coming up (of the endpoint `endpoint_id`, or of every endpoint; of its config
        `version`, or of any)."""
        return [rt for (ep, key), rt in list(self._starting.items())
                if (endpoint_id is None or ep == endpoint_id)
                and (version is None or key.rsplit("@", 1)[-1] == str(version))]

    async def deploy(self, name: str, target: dict, restoring: bool = False) -> None:
        """Bring up every entity of `target`, then make it the serving config (or fail, keeping the old).

        A deploy no longer wanted (the endpoint deleted, the update cancelled: `Engine.wants`) stops what
        it started and reports nothing; its runtimes stay in `pending()` until then, so a cancel finds them."""
        engine = self.engine
        doc = engine.endpoints[name]
        version = target["config_version"]
        old = engine.runtimes.get(name, {}) if not restoring else {}
        new, started = self._plan(doc, target, old)
        switched = False
        try:
            failures = await self._bring_up_all(doc, target, started)
            async with engine.switching:  # a cancel being written decides first
                if engine.is_current(doc):
                    doc["_last_version"] = max(doc.get("_last_version", 0), version)
                if not failures and engine.wants(doc, target, restoring):
                    self._switch(doc, target, restoring, old, new)
                    switched = True
        except asyncio.CancelledError:
            await _stop_all(started)
            raise
        finally:
            for rt in started:
                self._starting.pop((doc["id"], f"{rt.name}@{version}"), None)
        if switched:
            await engine.save(doc)
            return
        for rt in started:
            rt.status = "stopped"
        await _stop_all(started)
        if failures and engine.wants(doc, target, restoring):
            log.warning("endpoint %s: config version %s failed: %s", name, version, "; ".join(failures))
            await engine.config_failed(doc, target, restoring=restoring, replacing=bool(old))

    def _switch(self, doc: dict, target: dict, restoring: bool, old: dict[str, EntityRuntime],
                new: dict[str, EntityRuntime]) -> None:
        """Make `target` the serving config: traffic to the new servers first, then drain the old ones, so
        no request sees a gap; carried-over servers take their new settings now (not while deploying)."""
        engine = self.engine
        for entity in target["served_entities"]:
            if new[entity["name"]] in old.values():
                new[entity["name"]].configure(entity)
        engine.runtimes[doc["name"]] = new
        for rt in old.values():
            if rt not in new.values():
                engine.background(self.drain_and_stop(rt))
        engine.show_serving(doc, target, restoring=restoring)

    def _plan(self, doc: dict, target: dict, old: dict[str, EntityRuntime]
              ) -> tuple[dict[str, EntityRuntime], list[EntityRuntime]]:
        """The runtimes of `target`: unchanged ones carried over from `old`, and new ones to start."""
        new: dict[str, EntityRuntime] = {}
        started: list[EntityRuntime] = []
        for entity in target["served_entities"]:
            key = spec_key(entity)
            reuse = next((rt for rt in old.values() if rt.key == key), None)
            if reuse is not None:
                new[entity["name"]] = reuse
                entity["state"] = copy.deepcopy(entity_doc(doc, reuse.name, "config") or {}).get(
                    "state", entity_state(DEPLOYED, ""))
                continue
            rt = self._new_runtime(doc, entity)
            new[entity["name"]] = rt
            started.append(rt)
            self._starting[(doc["id"], f"{entity['name']}@{target['config_version']}")] = rt
        return new, started

    async def _bring_up_all(self, doc: dict, target: dict, started: list[EntityRuntime]) -> list[str]:
        """Start the new model servers together; returns what failed (and stops them all if cancelled)."""
        failures: list[str] = []
        try:
            results = await asyncio.gather(
                *(self._bring_up(doc, target, rt) for rt in started), return_exceptions=True)
            for rt, result in zip(started, results):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    failures.append(f"{rt.name}: {result}")
        except asyncio.CancelledError:
            await _stop_all(started)
            raise
        return failures

    def _new_runtime(self, doc: dict, entity: dict) -> EntityRuntime:
        limit = entity_concurrency(entity)[1]
        spec = entity_spec(entity)
        if is_external(entity):  # no model process: the provider's API stands behind it
            model = spec["external_model"]
            server = ExternalServer(model, self.engine.log_path(doc, entity["name"]),
                                    functools.partial(resolve_api_key, self.engine.secrets, model))
            return EntityRuntime(doc["name"], spec, server, spec_key(entity), limit, False, endpoint_id=doc["id"],
                                 task=model["task"])
        env, _ = self._placement(spec)
        server = ModelServer("", self.engine.log_path(doc, entity["name"]), threads=max(limit, 4), env=env)
        return EntityRuntime(doc["name"], spec, server, spec_key(entity), limit,
                             bool(entity.get("scale_to_zero_enabled")), endpoint_id=doc["id"])

    def _placement(self, spec: dict) -> tuple[dict[str, str], str]:
        engine = self.engine
        return entity_env(spec, engine.paths.mlflow_uri, engine.cloud, engine.gpu_count)

    async def _bring_up(self, doc: dict, target: dict, rt: EntityRuntime) -> None:
        """Start one entity's model server and wait until it answers; its build log records the steps."""
        lines: list[str] = []

        def note(msg: str) -> None:
            lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")

        entity = next(e for e in target["served_entities"] if e["name"] == rt.name)
        try:
            if isinstance(rt.server, ExternalServer):
                placement = await self._start_external(rt, note)
            else:
                placement = await self._start_model_server(rt, note, lines)
            rt.mark_ready()
            entity["state"] = entity_state(DEPLOYED, placement)
        except (ModelServerFailed, RuleViolation) as exc:
            note(f"FAILED: {exc}")
            reason = _last_error_line("\n".join(lines)) or str(exc)
            entity["state"] = entity_state(FAILED, f"Failed to deploy: {reason} See the build logs.")
            raise ModelServerFailed(reason) from exc
        except asyncio.CancelledError:
            note("CANCELED: the deployment was stopped (the update was canceled, the endpoint deleted, or the "
                 "backend stopped).")
            raise
        finally:
            await self._record_bring_up(doc, rt.name, target["config_version"], "\n".join(lines) + "\n")

    async def _start_model_server(self, rt: EntityRuntime, note, lines: list[str]) -> str:
        """Resolve the model version, start its scoring server and wait until it answers; returns the placement."""
        server = rt.server
        note(f"Resolving {rt.spec['entity_name']} version {rt.spec['entity_version']} in the MLflow registry.")
        server.model_uri = await asyncio.to_thread(
            self.engine.registry.resolve, rt.spec["entity_name"], rt.spec["entity_version"])
        note(f"Model files: {server.model_uri}")
        rt.task = (await asyncio.to_thread(read_model_metadata, server.model_uri))["task"]
        _, placement = self._placement(rt.spec)
        if placement:
            note(placement)
        offset = server.log_path.stat().st_size if server.log_path.exists() else 0
        server.spawn()
        note(f"Started MLflow scoring server (pid {server.pid}, port {server.port}, "
             f"{rt.limit} concurrent requests).")
        try:
            took = await server.wait_ready(MODEL_LOAD_TIMEOUT_S)
        finally:
            lines.append(_read_from(server.log_path, offset).rstrip())
        note(f"Model server ready after {took:.1f} s.")
        return placement

    @staticmethod
    async def _start_external(rt: EntityRuntime, note) -> str:
        """An external model: resolve its API key (the build log names where it comes from, never the key)."""
        server = rt.server
        note(f"External model {describe(server.external_model)}")
        note(f"API key: {key_source(server.external_model)}.")
        server.spawn()
        took = await server.wait_ready(MODEL_LOAD_TIMEOUT_S)
        note(f"Ready after {took:.1f} s: queries go to {server.upstream.url} ({rt.limit} concurrent requests).")
        return ""

    async def _record_bring_up(self, doc: dict, entity: str, version: int, text: str) -> None:
        """Write an entity's build log and the endpoint's state (not for an endpoint deleted meanwhile)."""
        if not self.engine.is_current(doc):
            return
        try:
            await self.engine.write(self.engine.store.save_build_log, doc["id"], entity, version, text)
        except StoreUnavailable as exc:
            log.warning("endpoint %s: could not save the build log of %s: %s", doc["name"], entity, exc)
        await self.engine.record(doc)

    @staticmethod
    async def drain_and_stop(rt: EntityRuntime, grace_s: float = DRAIN_GRACE_S) -> None:
        """Stop a server that no longer receives traffic once its in-flight requests have finished."""
        rt.status = "draining"
        deadline = time.monotonic() + grace_s
        try:
            while rt.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:  # also when cancelled at shutdown: the server is no longer among the engine's runtimes
            rt.status = "stopped"
            await rt.server.stop()


async def _stop_all(runtimes: list[EntityRuntime]) -> None:
    for rt in runtimes:
        await rt.server.stop()


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
