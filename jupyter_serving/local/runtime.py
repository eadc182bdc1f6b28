"""The live side of a served entity: its model server, its concurrency gate and its serving status."""
from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from dataclasses import dataclass, field

from jupyter_serving.core.rules import entity_concurrency
from jupyter_serving.local.supervisor import ModelServer


@dataclass
class EntityRuntime:
    """One served entity's live side: its model server and its concurrency gate."""

    endpoint: str
    spec: dict
    server: ModelServer  # or an external.ExternalServer (an external model: no process)
    key: str
    limit: int
    scale_to_zero: bool
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    status: str = "starting"  # starting | ready | recovering | scaled_to_zero | draining | stopped
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    endpoint_id: str = ""  # the endpoint's id: a runtime never reports to a recreated endpoint of its name
    task: str | None = None  # the model's task (`llm/v1/chat`, `agent/v1/responses`, ...) when it declares one

    @property
    def name(self) -> str:
        return self.spec["name"]

    def configure(self, entity: dict) -> None:
        """Take over the settings of `entity` (an unchanged deployment carried into a new config)."""
        self.spec = entity_spec(entity)
        self.limit = entity_concurrency(entity)[1]
        self.scale_to_zero = bool(entity.get("scale_to_zero_enabled"))

    def mark_ready(self) -> None:
        self.status = "ready"
        self.last_used = time.monotonic()
        self.ready.set()


def spec_key(entity: dict) -> str:
    """What makes two served entities the same deployment (so an unchanged one is not restarted)."""
    relevant = {k: entity.get(k) for k in ("name", "entity_name", "entity_version", "workload_type",
                                           "environment_vars", "external_model")}
    relevant["threads"] = entity_concurrency(entity)[1]
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def entity_spec(entity: dict) -> dict:
    """A served entity as configured: without its reported deployment state."""
    return {k: copy.deepcopy(v) for k, v in entity.items() if k != "state"}


def strip_states(config: dict) -> dict:
    """A config with its served entities' reported states removed."""
    return {**copy.deepcopy(config), "served_entities": [entity_spec(e) for e in config["served_entities"]]}
