"""Tab completion of `%serve` and `%%query`/`%query`, derived from the command registry.

Endpoint and served-entity names come from the current client (never connecting or starting
anything) and are cached for a few seconds; completion never raises.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from jupyter_serving.magics import registry

CACHE_SECONDS = 10.0
WORKLOAD_SIZES = ["Small", "Medium", "Large"]
QUERY_OPTIONS = ["--chat", "--entity", "--max-tokens", "--no-stream", "--output", "--raw", "--stop", "--system",
                 "--temperature", "--timeout", "-o"]


@dataclass
class EndpointNames:
    """Endpoint names and their served entities, cached; commands that change the list say so."""

    _names: tuple[float, list[str]] = (0.0, [])
    _entities: dict[str, tuple[float, list[str]]] = field(default_factory=dict)

    def remember(self, names: list[str]) -> None:
        self._names = (time.monotonic(), list(names))

    def forget(self) -> None:
        self._names = (0.0, [])

    def endpoints(self) -> list[str]:
        from jupyter_serving import api

        stamp, names = self._names
        if time.monotonic() - stamp < CACHE_SECONDS:
            return names
        client = api.current_client()
        if client is None:
            return names
        try:
            names = client.names()
        except Exception:  # noqa: BLE001 - completion must never raise
            return names
        self.remember(names)
        return names

    def entities(self, endpoint: str) -> list[str]:
        from jupyter_serving import api

        stamp, names = self._entities.get(endpoint, (0.0, []))
        if time.monotonic() - stamp < CACHE_SECONDS:
            return names
        client = api.current_client()
        if client is None:
            return []
        try:
            names = client.get(endpoint).entity_names
        except Exception:  # noqa: BLE001
            return []
        self._entities[endpoint] = (time.monotonic(), names)
        return names


@dataclass
class Typed:
    """The words typed so far (the magic's own name first); the last one is being completed."""

    words: list[str]
    names: EndpointNames

    @classmethod
    def from_event(cls, event, names: EndpointNames) -> Typed:
        text = getattr(event, "text_until_cursor", None) or event.line
        words = text.split()
        if words and text.endswith((" ", "\t")):
            words.append("")
        return cls(words, names)

    @property
    def index(self) -> int:
        return len(self.words) - 1

    @property
    def current(self) -> str:
        return self.words[-1]

    @property
    def prev(self) -> str:
        return self.words[-2] if len(self.words) >= 2 else ""


def workload_values(typed: Typed) -> list[str]:
    """Values of --workload-size / --workload-type (create and update)."""
    if typed.prev == "--workload-size":
        return WORKLOAD_SIZES
    if typed.prev == "--workload-type":
        from jupyter_serving.core.workloads import all_workload_type_names

        return sorted(all_workload_type_names())
    return []


def complete_serve(typed: Typed) -> list[str]:
    if not typed.words:
        return []
    if typed.index == 1:
        return list(registry.COMMANDS)
    command = registry.COMMANDS.get(typed.words[1])
    if command is None:
        return []
    if typed.current.startswith("-"):
        return command.options()
    if command.takes_name and typed.index == 2:
        return typed.names.endpoints()
    return command.complete(typed) if command.complete is not None else []


def complete_query(typed: Typed) -> list[str]:
    if len(typed.words) == 2:
        return typed.names.endpoints()
    if typed.words and typed.current.startswith("-"):
        return QUERY_OPTIONS
    if len(typed.words) >= 3 and typed.prev == "--entity":
        return typed.names.entities(typed.words[1])
    return []
