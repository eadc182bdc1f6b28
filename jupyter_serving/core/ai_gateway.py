"""AI Gateway settings from short arguments (pure): `100/min per user` rate limits, an inference table
`catalog.schema.prefix`, guardrail keywords and PII behaviour, usage tracking, fallbacks; merged over an
endpoint's current `ai_gateway`, and described in words.

How limits go together (principals, duplicates, how many group limits) and the inference table's
life cycle are `core.rules.validate_ai_gateway`, the one definition the backend applies; `check` calls
it. Its bounds below are the ones the backend's request models (local/http/models.py: `AiGateway`) import,
so that a mistake is named before anything is sent.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_serving.core import rules
from jupyter_serving.core.errors import Hint, InvalidInputError

__all__ = ["PER_KEYS", "PII_BEHAVIORS", "build", "check", "describe", "limit_spec", "parse_inference_table",
           "parse_keywords",
           "parse_per", "parse_rate_limit", "per_text", "rate_limit"]

# `per user|endpoint|group:NAME|sp:ID|user:NAME` -> the rate limit's key.
PER_KEYS = {"user": "user", "users": "user", "endpoint": "endpoint", "group": "user_group",
            "user_group": "user_group", "sp": "service_principal", "service_principal": "service_principal"}
PII_BEHAVIORS = {"block": "BLOCK", "mask": "MASK", "none": "NONE"}
SIDES = {"both": ("input", "output"), "input": ("input",), "output": ("output",)}
# AI Gateway bounds: the one definition, which the backend's request models (local/http/models.py) use too.
MAX_COUNT = 1_000_000_000  # calls or tokens of one rate limit
MAX_RATE_LIMITS = 20
MAX_UC_NAME = 255  # a Unity Catalog catalog, schema or table name (inference tables)
UC_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")  # locally: identifier characters only (no quoting)
UC_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,255}")
MAX_PREFIX = MAX_UC_NAME - len("_payload")
MAX_KEYWORDS, MAX_KEYWORD = 200, 1024  # invalid_keywords, valid_topics: entries and their length

RATE_HINT = Hint(python="e.g. rate_limits=['100/min per user', '5000 tokens/min per group:data-eng'].",
                 magic="e.g. --rate-limit '100/min per user' or --calls 100 --per user.")
PER_HINT = "Use user, endpoint, group:NAME, sp (every service principal), sp:ID or user:NAME."
TABLE_HINT = Hint(python="Give inference_table='catalog.schema.prefix', e.g. 'main.serving.chat'.",
                  magic="Write --inference-table CATALOG.SCHEMA.PREFIX, e.g. main.serving.chat.")

_LIMIT_RE = re.compile(r"(?P<counts>.+?)\s*/\s*(?:min|minute|m)\b\s*(?:per\s+(?P<who>\S+))?", re.IGNORECASE)
_COUNT_RE = re.compile(r"(?P<n>\d+)\s*(?P<unit>calls?|requests?|queries|tokens?)?", re.IGNORECASE)


def parse_per(who: str | None) -> tuple[str, str | None]:
    """'user' -> ('user', None); 'group:eng' -> ('user_group', 'eng'); None -> ('endpoint', None)."""
    if who in (None, ""):
        return "endpoint", None
    kind, _, principal = str(who).strip().partition(":")
    key = PER_KEYS.get(kind.strip().lower())
    if key is None:
        raise InvalidInputError(f"Unknown rate-limit key '{who}'", PER_HINT)
    return key, principal.strip() or None


def per_text(limit: Mapping) -> str:
    """The `per ...` words of a rate limit: 'user', 'group:eng', 'endpoint'."""
    short = {"user_group": "group", "service_principal": "sp"}
    key = limit.get("key") or "endpoint"
    principal = limit.get("principal")
    return f"{short.get(key, key)}:{principal}" if principal else short.get(key, key)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not str(value).strip().isdigit():
        raise InvalidInputError(f"Rate-limit {what} '{value}' is not a whole number", RATE_HINT)
    number = int(value)
    if not 0 <= number <= MAX_COUNT:
        raise InvalidInputError(f"Rate-limit {what} {number} is out of range", f"Use 0 to {MAX_COUNT:,} per minute.")
    return number


def rate_limit(calls: Any = None, tokens: Any = None, per: str | None = None) -> dict:
    """One rate limit: `calls` and/or `tokens` per minute, `per` a key (see `parse_per`)."""
    if calls is None and tokens is None:
        raise InvalidInputError("A rate limit needs calls or tokens (or both)", RATE_HINT)
    key, principal = parse_per(per)
    limit: dict[str, Any] = {"key": key, "renewal_period": "minute"}
    if calls is not None:
        limit["calls"] = _count(calls, "calls")
    if tokens is not None:
        limit["tokens"] = _count(tokens, "tokens")
    if principal:
        limit["principal"] = principal
    return limit


def parse_rate_limit(spec: Any) -> dict:
    """'100/min per user', '5000 tokens/min per group:eng', '100 calls, 5000 tokens/min' (the endpoint);
    a dict is taken as the rate limit itself."""
    if isinstance(spec, Mapping):
        return dict(spec)
    text = str(spec or "").strip()
    match = _LIMIT_RE.fullmatch(text)
    if match is None:
        raise InvalidInputError(f"Rate limit '{text[:80]}' is not COUNT/min [per WHO]", RATE_HINT)
    counts: dict[str, Any] = {}
    for part in re.split(r"\s*(?:,|\+|\band\b)\s*", match["counts"].strip()):
        found = _COUNT_RE.fullmatch(part)
        if found is None:
            raise InvalidInputError(f"Rate limit '{text[:80]}': '{part}' is not a count (N calls or N tokens)",
                                    RATE_HINT)
        unit = "tokens" if (found["unit"] or "").lower().startswith("token") else "calls"
        if unit in counts:
            raise InvalidInputError(f"Rate limit '{text[:80]}' counts {unit} twice", RATE_HINT)
        counts[unit] = found["n"]
    return rate_limit(per=match["who"], **counts)


def parse_inference_table(spec: Any) -> dict:
    """'catalog.schema.prefix' -> an enabled `inference_table_config` (payloads in `prefix_payload`)."""
    if isinstance(spec, Mapping):
        return dict(spec)
    parts = str(spec or "").strip().split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidInputError(f"Inference table '{str(spec)[:80]}' is not CATALOG.SCHEMA.PREFIX", TABLE_HINT)
    bad = next((p for p in parts if not UC_NAME_RE.fullmatch(p)), None)
    if bad is not None or len(parts[2]) > MAX_PREFIX:
        raise InvalidInputError(f"Inference table name part '{(bad or parts[2])[:80]}' is invalid: use letters, "
                                f"digits and '_' (at most 255 characters; the prefix at most {MAX_PREFIX})",
                                TABLE_HINT)
    return {"enabled": True, "catalog_name": parts[0], "schema_name": parts[1], "table_name_prefix": parts[2]}


def parse_keywords(words: Any) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b'] (blank entries dropped)."""
    items = words.split(",") if isinstance(words, str) else list(words or [])
    out = [str(w).strip() for w in items if str(w).strip()]
    if len(out) > MAX_KEYWORDS or any(len(w) > MAX_KEYWORD for w in out):
        raise InvalidInputError(f"Too many or too long guardrail keywords ({len(out)})",
                                f"Give at most {MAX_KEYWORDS} keywords of at most {MAX_KEYWORD} characters.")
    return out


def _pii(value: str) -> str:
    behavior = PII_BEHAVIORS.get(str(value).strip().lower())
    if behavior is None:
        raise InvalidInputError(f"Unknown PII behaviour '{value}'", "Use block, mask or none.")
    return behavior


def _guardrails(gw: dict, keywords: Any, pii: str | None, sides: str) -> None:
    if sides not in SIDES:
        raise InvalidInputError(f"Guardrails apply to input, output or both, not '{sides}'", "")
    guardrails = gw.setdefault("guardrails", {})
    for side in SIDES[sides]:
        params = dict(guardrails.get(side) or {})
        if keywords is not None:
            params["invalid_keywords"] = parse_keywords(keywords)
            if not params["invalid_keywords"]:
                del params["invalid_keywords"]
        if pii is not None:
            params["pii"] = {"behavior": _pii(pii)}
        guardrails[side] = params


def _inference_table(value: Any, current: Mapping | None) -> dict:
    if value is False or value == "":
        old = dict(current or {})
        return {**old, "enabled": False} if old else {"enabled": False}
    return parse_inference_table(value)


def build(base: Mapping | None = None, *, usage_tracking: bool | None = None, inference_table: Any = None,
          rate_limits: Iterable | None = None, guardrail_keywords: Any = None, pii: str | None = None,
          guardrails_on: str = "both", fallback: bool | None = None) -> dict:
    """`base` (an endpoint's `ai_gateway`, or {}) with the settings given changed: `inference_table`
    'catalog.schema.prefix' (False disables it), `rate_limits` replacing the list (strings as
    `parse_rate_limit` reads them, or dicts), keywords and PII behaviour on `guardrails_on` (input, output
    or both)."""
    gw: dict = copy.deepcopy(dict(base or {}))
    if usage_tracking is not None:
        gw["usage_tracking_config"] = {"enabled": bool(usage_tracking)}
    if inference_table is not None:
        gw["inference_table_config"] = _inference_table(inference_table, gw.get("inference_table_config"))
    if rate_limits is not None:
        limits = [parse_rate_limit(r) for r in rate_limits]
        if len(limits) > MAX_RATE_LIMITS:
            raise InvalidInputError(f"{len(limits)} rate limits given", f"Give at most {MAX_RATE_LIMITS}.")
        gw["rate_limits"] = limits
    if guardrail_keywords is not None or pii is not None:
        _guardrails(gw, guardrail_keywords, pii, guardrails_on)
    if fallback is not None:
        gw["fallback_config"] = {"enabled": bool(fallback)}
    return gw


def check(ai_gateway: Any, current: Any = None) -> None:
    """`rules.validate_ai_gateway` (raises `rules.RuleViolation`), with `current` the endpoint's settings."""
    rules.validate_ai_gateway(ai_gateway, current)


def limit_spec(limit: Mapping) -> str:
    """A rate limit as `parse_rate_limit` reads it: '100 calls, 5000 tokens/min per group:eng'."""
    counts = ", ".join(f"{limit[k]} {k}" for k in ("calls", "tokens") if limit.get(k) is not None)
    return f"{counts}/min per {per_text(limit)}"


def _side_text(side: str, params: Mapping) -> str:
    bits = []
    if params.get("invalid_keywords"):
        bits.append("keywords " + ", ".join(params["invalid_keywords"]))
    behavior = (params.get("pii") or {}).get("behavior")
    if behavior and behavior != "NONE":
        bits.append(f"PII {behavior.lower()}")
    if params.get("valid_topics"):
        bits.append("topics " + ", ".join(params["valid_topics"]))
    return f"{side}: {'; '.join(bits)}" if bits else ""


def describe(ai_gateway: Mapping | None) -> list[str]:
    """One line per setting, in words ('usage tracking: on', 'rate limits: 100 calls/min per user', ...)."""
    gw = dict(ai_gateway or {})
    on = {True: "on", False: "off"}
    table = gw.get("inference_table_config") or {}
    lines = [f"usage tracking: {on[bool((gw.get('usage_tracking_config') or {}).get('enabled'))]}"]
    if table.get("enabled"):
        lines.append(f"inference table: {table.get('catalog_name')}.{table.get('schema_name')}."
                     f"{table.get('table_name_prefix')}_payload")
    else:
        lines.append("inference table: off")
    limits = gw.get("rate_limits") or []
    lines.append("rate limits: " + ("; ".join(limit_spec(r) for r in limits) if limits else "none"))
    sides = [_side_text(s, (gw.get("guardrails") or {}).get(s) or {}) for s in ("input", "output")]
    lines.append("guardrails: " + (" · ".join(s for s in sides if s) or "none"))
    lines.append(f"fallback: {on[bool((gw.get('fallback_config') or {}).get('enabled'))]}")
    return lines
