"""Parsing of `E=P` traffic splits and `k=v` tags from magic arguments. Pure: no I/O.

The traffic rules themselves (names exist, integers 0-100, sum to 100) live in `rules`; this module
only turns words into the structures `rules.normalize_routes` validates.
"""
from __future__ import annotations

from collections.abc import Iterable

from jupyter_serving.core.errors import InvalidInputError


def parse_traffic(words: Iterable[str]) -> dict[str, int]:
    """["a=80", "b=20"] -> {"a": 80, "b": 20}. Accepts `a=80%` and `a:80` too."""
    routes: dict[str, int] = {}
    for word in words:
        for part in [p for p in str(word).split(",") if p.strip()]:
            sep = "=" if "=" in part else (":" if ":" in part else None)
            if sep is None:
                raise InvalidInputError(f"Traffic route '{part}' has no percentage",
                                        "Write ENTITY=PERCENT, e.g. iris-1=80 iris-2=20.")
            name, _, pct = part.partition(sep)
            name, pct = name.strip(), pct.strip().rstrip("%").strip()
            if not name:
                raise InvalidInputError(f"Traffic route '{part}' has no entity name",
                                        "Write ENTITY=PERCENT, e.g. iris-1=80 iris-2=20.")
            try:
                value = int(pct)
            except ValueError:
                raise InvalidInputError(f"Traffic percentage '{pct}' for '{name}' is not an integer",
                                        "Use whole percentages from 0 to 100 that sum to 100.") from None
            if name in routes:
                raise InvalidInputError(f"Traffic for '{name}' is given twice",
                                        "Give one percentage per served entity.")
            routes[name] = value
    if not routes:
        raise InvalidInputError("No traffic split given", "Write ENTITY=PERCENT ..., e.g. iris-1=80 iris-2=20.")
    return routes


def routes_to_traffic_config(routes: dict[str, int]) -> dict:
    return {"routes": [{"served_model_name": k, "traffic_percentage": v} for k, v in routes.items()]}


def parse_tags(words: Iterable[str]) -> dict[str, str]:
    """["team=ml", "env=dev"] -> {"team": "ml", "env": "dev"}. A value may contain '='."""
    tags: dict[str, str] = {}
    for word in words:
        if "=" not in word:
            raise InvalidInputError(f"Tag '{word}' has no value", "Write KEY=VALUE, e.g. team=ml.")
        key, _, value = word.partition("=")
        key = key.strip()
        if not key:
            raise InvalidInputError(f"Tag '{word}' has no key", "Write KEY=VALUE, e.g. team=ml.")
        tags[key] = value.strip()
    return tags


PERMISSION_LEVELS = ("CAN_MANAGE", "CAN_QUERY", "CAN_VIEW")


def parse_permission_level(word: str) -> str:
    level = str(word).strip().upper().replace(" ", "_").replace("-", "_")
    if not level.startswith("CAN_"):
        level = "CAN_" + level
    if level not in PERMISSION_LEVELS:
        raise InvalidInputError(f"Unknown permission level '{word}'",
                                f"Use one of {', '.join(PERMISSION_LEVELS)}.")
    return level


def parse_principal(word: str) -> dict[str, str]:
    """'alice@x.com' -> user; 'group:admins' -> group; 'sp:<application id>' -> service principal."""
    word = str(word).strip()
    if not word:
        raise InvalidInputError("No principal given", "Name a user (e-mail), group:NAME or sp:APPLICATION_ID.")
    for prefix, key in (("group:", "group_name"), ("sp:", "service_principal_name"),
                        ("user:", "user_name")):
        if word.lower().startswith(prefix):
            value = word[len(prefix):].strip()
            if not value:
                break
            return {key: value}
    else:
        if "@" in word:
            return {"user_name": word}
        return {"group_name": word}
    raise InvalidInputError(f"Principal '{word}' is empty after its prefix",
                            "Name a user (e-mail), group:NAME or sp:APPLICATION_ID.")
