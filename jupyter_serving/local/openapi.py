"""OpenAPI 3.1 document of an endpoint, built from its models' signatures (shape as Databricks serves it)."""
from __future__ import annotations

_TYPES = {
    "long": {"type": "integer", "format": "int64"},
    "integer": {"type": "integer", "format": "int32"},
    "double": {"type": "number", "format": "double"},
    "float": {"type": "number", "format": "float"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "binary"},
    "datetime": {"type": "string", "format": "date-time"},
}


def _field_schema(spec: dict) -> dict:
    kind = spec.get("type")
    if kind == "tensor":
        return {"type": "array", "items": _TYPES.get(spec.get("tensor-spec", {}).get("dtype", ""), {})}
    if kind == "array":
        return {"type": "array", "items": _field_schema(spec.get("items") or {})}
    if kind == "object":
        props = spec.get("properties") or {}
        schema = {"type": "object", "properties": {k: _field_schema(v) for k, v in props.items()}}
        required = [k for k, v in props.items() if v.get("required", True)]
        if required:
            schema["required"] = required
        return schema
    if kind == "map":
        return {"type": "object", "additionalProperties": _field_schema(spec.get("values") or {})}
    return dict(_TYPES.get(kind or "", {"type": "object", "format": "unknown"}))


_STRUCTURED = ("array", "object", "map")


def _params_schema(params: list[dict] | None) -> dict | None:
    if not params:
        return None
    props = {}
    for p in params:
        schema = _field_schema(p)
        if p.get("default") is not None:
            schema["default"] = str(p["default"])
        props[p["name"]] = schema
    return {"type": "object", "properties": props}


def _example_rows(example, columns: list[str]) -> list[list] | None:
    """Rows of the saved input example as dataframe_split data, if it has that shape."""
    if isinstance(example, dict):
        split = example.get("dataframe_split") or (example if "data" in example else None)
        if isinstance(split, dict) and isinstance(split.get("data"), list):
            return split["data"]
        records = example.get("dataframe_records")
        if isinstance(records, list):
            return [[row.get(c) for c in columns] for row in records if isinstance(row, dict)]
    return None


def request_schemas(metadata: dict) -> list[dict]:
    """The request body alternatives (`oneOf`) for one model."""
    inputs = metadata.get("inputs") or []
    params = _params_schema(metadata.get("params"))
    named = [i for i in inputs if i.get("name")]
    variants: list[dict] = []
    if named and any(i.get("type") in _STRUCTURED for i in named):
        # chat / completions / agent models: the signature's fields are the body's own fields
        body = {"type": "object", "properties": {i["name"]: _field_schema(i) for i in named},
                "required": [i["name"] for i in named if i.get("required", True)]}
        if isinstance(metadata.get("example"), dict):
            body["examples"] = [metadata["example"]]
        return [body]
    if named and all(i.get("type") != "tensor" for i in inputs):
        columns = [i["name"] for i in named]
        required = [i["name"] for i in named if i.get("required", True)]
        split = {
            "type": "object",
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "properties": {
                        "columns": {"description": f"required fields: {', '.join(required)}", "type": "array",
                                    "items": {"type": "string", "enum": columns}},
                        "data": {"type": "array",
                                 "items": {"type": "array", "prefixItems": [_field_schema(i) for i in named]}},
                    },
                }
            },
        }
        rows = _example_rows(metadata.get("example"), columns)
        if rows:
            split["examples"] = [{"columns": columns, "data": rows}]
        records = {
            "type": "object",
            "properties": {
                "dataframe_records": {
                    "type": "array",
                    "items": {"required": required, "type": "object",
                              "properties": {i["name"]: _field_schema(i) for i in named}},
                }
            },
        }
        variants += [split, records]
    else:
        variants.append({"type": "object", "properties": {"inputs": {"type": "array"}}})
        variants.append({"type": "object", "properties": {"instances": {"type": "array"}}})
    if params:
        for variant in variants:
            variant["properties"]["params"] = params
    return variants


def endpoint_openapi(endpoint: dict, base_url: str, metadata_by_entity: dict[str, dict]) -> dict:
    paths: dict = {}
    response = {"200": {"description": "Successful operation",
                        "content": {"application/json": {"schema": {"type": "object",
                                                                    "properties": {"predictions": {}}}}}}}
    for entity_name, metadata in metadata_by_entity.items():
        paths[f"/served-models/{entity_name}/invocations"] = {
            "post": {"requestBody": {"content": {"application/json": {"schema": {
                "oneOf": request_schemas(metadata)}}}}, "responses": response}
        }
    if metadata_by_entity:
        first = next(iter(metadata_by_entity.values()))
        paths["/invocations"] = {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "oneOf": request_schemas(first)}}}}, "responses": response}}
    return {
        "openapi": "3.1.0",
        "info": {"title": endpoint["name"], "version": str((endpoint.get("config") or {}).get("config_version", 1))},
        "servers": [{"url": f"{base_url}/serving-endpoints/{endpoint['name']}"}],
        "paths": paths,
    }
