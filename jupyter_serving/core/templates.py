"""Request templates: a body to start a query from, built from an endpoint's OpenAPI schema (pure).

Databricks serves a schema per endpoint (GET .../openapi) derived from the model signature; the
template prefers the schema's own example, then dataframe_split, dataframe_records, and the other
input formats in turn, and fills the signature's params with their (typed) defaults.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyter_serving.core.errors import ServingError

__all__ = ["request_template_from_openapi"]

_PLACEHOLDERS = {"integer": 0, "number": 0.0, "string": "", "boolean": False, "array": [], "object": {}}
# Input formats in order of preference; the first two are built from the column schema.
_INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs", "messages", "prompt", "input")


def _typed_default(value: Any, kind: Any) -> Any:
    """Schemas carry param defaults as strings ("0.5", as Databricks serves them); a model's
    signature refuses a string where it expects a number, so give the default its schema type."""
    if not isinstance(value, str):
        return value
    try:
        if kind == "number":
            return float(value)
        if kind == "integer":
            return int(float(value))
    except ValueError:
        return value
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _placeholder(schema: Mapping | None) -> Any:
    if not isinstance(schema, Mapping):
        return None
    if "default" in schema:
        return _typed_default(schema["default"], schema.get("type"))
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" and isinstance(schema.get("properties"), Mapping):
        return {k: _placeholder(v) for k, v in schema["properties"].items()}
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return [_placeholder(schema["items"])]
    return _PLACEHOLDERS.get(kind)


def _request_schema(spec: Mapping, entity: str | None) -> Mapping:
    """The JSON request-body schema of the entity's invocations path (else the first path)."""
    paths = spec.get("paths") or {}
    chosen = next((item for path, item in paths.items()
                   if entity is None or f"/served-models/{entity}/" in path), None)
    if chosen is None and paths:
        chosen = next(iter(paths.values()))
    if chosen is None:
        raise ServingError("The schema has no paths", "The model needs a signature for a schema.")
    content = ((chosen.get("post") or {}).get("requestBody") or {}).get("content") or {}
    return content.get("application/json", {}).get("schema") or {}


def _with_params(body: dict, alt: Mapping) -> dict:
    params = (alt.get("properties") or {}).get("params")
    if isinstance(params, Mapping) and isinstance(params.get("properties"), Mapping):
        values = {k: _placeholder(v) for k, v in params["properties"].items()}
        if values:
            body["params"] = values
    return body


def _dataframe_split(alt: Mapping) -> dict:
    examples = alt.get("examples") or []
    if examples and isinstance(examples[0], Mapping):
        example = dict(examples[0])
        return {"dataframe_split": example.get("dataframe_split", example)}
    props = alt["properties"]["dataframe_split"].get("properties") or {}
    cols = ((props.get("columns") or {}).get("items") or {}).get("enum") or []
    prefix = ((props.get("data") or {}).get("items") or {}).get("prefixItems") or []
    row = [_placeholder(p) for p in prefix] or [None] * len(cols)
    return {"dataframe_split": {"columns": list(cols), "data": [row]}}


def _body_for(key: str, alt: Mapping) -> dict:
    if key == "dataframe_split":
        return _dataframe_split(alt)
    if key == "dataframe_records":
        item = alt["properties"]["dataframe_records"].get("items") or {}
        return {"dataframe_records": [_placeholder({**item, "type": "object"})]}
    value = _placeholder(alt["properties"][key])
    if key == "messages" and not value:
        value = [{"role": "user", "content": ""}]
    return {key: value}


def request_template_from_openapi(spec: Mapping, entity: str | None = None) -> dict:
    """Build a request body from an endpoint's OpenAPI schema. Prefers the schema's own example,
    then dataframe_split, then dataframe_records, then the first alternative."""
    schema = _request_schema(spec, entity)
    alternatives = schema.get("oneOf") or [schema]
    by_key: dict[str, Mapping] = {}
    for alt in alternatives:
        props = alt.get("properties") or {}
        for key in _INPUT_KEYS:
            if key in props:
                by_key.setdefault(key, alt)
    for key in _INPUT_KEYS:
        if key in by_key:
            return _with_params(_body_for(key, by_key[key]), by_key[key])
    first = alternatives[0] if alternatives else {}
    return _placeholder({**first, "type": "object"}) or {}
