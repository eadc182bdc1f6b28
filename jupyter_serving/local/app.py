"""The REST app: Databricks Model Serving's control plane and data plane on loopback.

Paths, bodies and error codes follow reference/serving-api.md so that databricks-sdk's
`WorkspaceClient`, `mlflow.deployments.get_deploy_client("databricks")` and plain REST work unchanged.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from ..localctl import Paths
from ..rules import RuleViolation, normalize_config, validate_endpoint_name
from .engine import Engine, now_ms
from .gateway import Gateway, GatewayError
from .openapi import endpoint_openapi
from .registry import read_model_metadata
from .supervisor import tail

log = logging.getLogger("jupyter_serving.local")

LEVELS = {"CAN_VIEW": 1, "CAN_QUERY": 2, "CAN_MANAGE": 3}
LEVEL_DESCRIPTIONS = {
    "CAN_VIEW": "Can view the endpoint and its logs and metrics",
    "CAN_QUERY": "Can view and query the endpoint",
    "CAN_MANAGE": "Can update, stop, delete the endpoint and manage its permissions",
}
_STATUS = {
    "INVALID_PARAMETER_VALUE": 400, "INVALID_STATE": 400, "BAD_REQUEST": 400, "MALFORMED_REQUEST": 400,
    "RESOURCE_DOES_NOT_EXIST": 404, "RESOURCE_ALREADY_EXISTS": 409, "RESOURCE_CONFLICT": 409,
    "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "REQUEST_LIMIT_EXCEEDED": 429,
}


class ApiError(Exception):
    def __init__(self, error_code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.error_code, self.message = error_code, message
        self.status = status or _STATUS.get(error_code, 400)


def error_response(status: int, error_code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": error_code, "message": message}, status_code=status)


class Caller:
    def __init__(self, user: str, is_admin: bool):
        self.user, self.is_admin = user, is_admin


def create_app(paths: Paths, cloud: str, idle_timeout_s: float, admin_user: str,
               on_ready=None, on_stop=None) -> FastAPI:
    """The ASGI app. `on_ready` / `on_stop` run at the end of startup and the start of shutdown (uvicorn
    re-raises SIGTERM once it has shut down, so code after `serve()` would never run)."""
    engine = Engine(paths, cloud, idle_timeout_s, admin_user)
    gateway = Gateway(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        token = paths.token.read_text().strip()
        engine.store.add_token(token, admin_user, True, "local admin", now_ms())
        await engine.startup()
        if on_ready:
            on_ready()
        yield
        if on_stop:
            on_stop()
        await engine.shutdown()

    app = FastAPI(title="jupyter-serving local backend", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def _api_error(_req, exc: ApiError):
        return error_response(exc.status, exc.error_code, exc.message)

    @app.exception_handler(RuleViolation)
    async def _rule_error(_req, exc: RuleViolation):
        return error_response(_STATUS.get(exc.error_code, 400), exc.error_code, exc.message)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_req, exc: GatewayError):
        return error_response(exc.status, exc.error_code, exc.message)

    # auth --------------------------------------------------------------------------------------
    def caller_of(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError("UNAUTHENTICATED", "Missing credentials: send 'Authorization: Bearer <token>' "
                                              "(jupyter-serving local env prints the token).", 401)
        found = engine.store.user_for_token(header[7:].strip())
        if found is None:
            raise ApiError("PERMISSION_DENIED", "Invalid access token.", 403)
        return Caller(*found)

    def level_of(doc: dict, caller: Caller) -> int:
        if caller.is_admin or doc.get("creator") == caller.user:
            return LEVELS["CAN_MANAGE"]
        best = 0
        for entry in doc.get("acl", []):
            principal = entry.get("user_name") or entry.get("service_principal_name")
            if principal == caller.user or entry.get("group_name") == "users":
                best = max(best, LEVELS.get(entry.get("permission_level"), 0))
        return best

    def require(doc: dict, caller: Caller, level: str) -> None:
        if level_of(doc, caller) < LEVELS[level]:
            raise ApiError("PERMISSION_DENIED",
                           f"User {caller.user} does not have {level} permission on serving endpoint "
                           f"'{doc['name']}'.", 403)

    def endpoint_for(request: Request, name: str, level: str) -> tuple[dict, Caller]:
        caller = caller_of(request)
        doc = engine.get(name)
        if level_of(doc, caller) == 0:  # do not reveal endpoints the caller may not see
            raise ApiError("RESOURCE_DOES_NOT_EXIST", f"Endpoint '{name}' does not exist.")
        require(doc, caller, level)
        return doc, caller

    async def json_body(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return dict(request.query_params)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError("MALFORMED_REQUEST", f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(body, dict):
            raise ApiError("MALFORMED_REQUEST", "The request body must be a JSON object.")
        return body

    # presentation ------------------------------------------------------------------------------
    def present_config(config: dict | None) -> dict | None:
        if config is None:
            return None
        out = copy.deepcopy(config)
        out["served_models"] = [
            {**{k: v for k, v in e.items() if k not in ("entity_name", "entity_version")},
             "model_name": e["entity_name"], "model_version": e["entity_version"]}
            for e in out["served_entities"]
        ]
        return out

    def present(doc: dict, caller: Caller, base_url: str) -> dict:
        out = {k: v for k, v in doc.items() if not k.startswith("_") and k != "acl" and v is not None}
        out["config"] = present_config(doc.get("config"))
        out["pending_config"] = present_config(doc.get("pending_config"))
        for key in ("config", "pending_config"):
            if out[key] is None:
                del out[key]
        out["permission_level"] = {v: k for k, v in LEVELS.items()}.get(level_of(doc, caller), "CAN_VIEW")
        out["endpoint_url"] = f"{base_url}/serving-endpoints/{doc['name']}/invocations"
        return out

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # discovery ---------------------------------------------------------------------------------
    @app.get("/.well-known/databricks-config")
    async def well_known():
        return {"workspace_id": engine.workspace_id, "cloud": cloud.upper(), "oidc_endpoint": ""}

    # control plane -----------------------------------------------------------------------------
    @app.post("/api/2.0/serving-endpoints")
    @app.post("/api/2.0/serving-endpoints/")
    async def create_endpoint(request: Request):
        caller = caller_of(request)
        body = await json_body(request)
        validate_endpoint_name(body.get("name"))
        config = normalize_config(body.get("config"), cloud)
        await asyncio.to_thread(engine._check_models, config)
        doc = engine.create(body, config, caller.user)
        return present(doc, caller, base_url(request))

    @app.get("/api/2.0/serving-endpoints")
    @app.get("/api/2.0/serving-endpoints/")
    async def list_endpoints(request: Request):
        caller = caller_of(request)
        url = base_url(request)
        return {"endpoints": [present(d, caller, url) for d in engine.endpoints.values() if level_of(d, caller)]}

    @app.get("/api/2.0/serving-endpoints/{name}")
    async def get_endpoint(name: str, request: Request):
        doc, caller = endpoint_for(request, name, "CAN_VIEW")
        return present(doc, caller, base_url(request))

    @app.delete("/api/2.0/serving-endpoints/{name}")
    async def delete_endpoint(name: str, request: Request):
        endpoint_for(request, name, "CAN_MANAGE")
        await engine.delete(name)
        gateway.forget(name)
        return {}

    @app.put("/api/2.0/serving-endpoints/{name}/config")
    async def update_config(name: str, request: Request):
        doc, caller = endpoint_for(request, name, "CAN_MANAGE")
        body = await json_body(request)
        if "config" in body and "served_entities" not in body and "served_models" not in body:
            body = body["config"]  # tolerate the nested form some callers send
        config = normalize_config(body, cloud)
        engine._refuse_if_updating(doc, "update its config")
        await asyncio.to_thread(engine._check_models, config)
        doc = engine.update_config(name, config, caller.user)
        return present(doc, caller, base_url(request))

    @app.post("/api/2.0/serving-endpoints/{name}/config:stop")
    async def stop_endpoint(name: str, request: Request):
        doc, caller = endpoint_for(request, name, "CAN_MANAGE")
        doc = await engine.stop(name)
        return present(doc, caller, base_url(request))

    @app.post("/api/2.0/serving-endpoints/{name}/config:start")
    async def start_endpoint(name: str, request: Request):
        doc, caller = endpoint_for(request, name, "CAN_MANAGE")
        doc = engine.start(name, caller.user)
        return present(doc, caller, base_url(request))

    def find_entity(doc: dict, entity: str) -> dict:
        for which in ("pending_config", "config"):
            for e in (doc.get(which) or {}).get("served_entities", []):
                if e["name"] == entity:
                    return e
        raise ApiError("RESOURCE_DOES_NOT_EXIST",
                       f"Served entity '{entity}' does not exist on endpoint '{doc['name']}'; served "
                       f"entities: {', '.join(engine.entity_names(doc)) or 'none'}.")

    @app.get("/api/2.0/serving-endpoints/{name}/served-models/{entity}/build-logs")
    async def build_logs(name: str, entity: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_VIEW")
        body = await json_body(request)
        version = body.get("config_version")
        text = engine.store.build_log(name, entity, int(version) if version not in (None, "") else None)
        if text is None:  # entities of a failed update keep their build logs after the config is gone
            find_entity(doc, entity)
        return {"logs": text or ""}

    @app.get("/api/2.0/serving-endpoints/{name}/served-models/{entity}/logs")
    async def server_logs(name: str, entity: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_VIEW")
        find_entity(doc, entity)
        return {"logs": tail(paths.logs / name / f"{entity}.log", 64_000)}

    @app.get("/api/2.0/serving-endpoints/{name}/metrics")
    async def metrics(name: str, request: Request):
        endpoint_for(request, name, "CAN_VIEW")
        return Response(gateway.export(name), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/2.0/serving-endpoints/{name}/openapi")
    async def openapi(name: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_VIEW")
        if doc["state"]["ready"] != "READY" or not doc.get("config"):
            raise ApiError("INVALID_STATE", f"Endpoint '{name}' is not READY; its schema is available once it is.")

        def gather() -> dict:
            return {e["name"]: read_model_metadata(engine.registry.resolve(e["entity_name"], e["entity_version"]))
                    for e in doc["config"]["served_entities"]}

        return endpoint_openapi(doc, base_url(request), await asyncio.to_thread(gather))

    @app.patch("/api/2.0/serving-endpoints/{name}/tags")
    async def patch_tags(name: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_MANAGE")
        body = await json_body(request)
        tags = {t["key"]: t.get("value") for t in doc.get("tags", [])}
        for key in body.get("delete_tags") or []:
            tags.pop(key, None)
        for tag in body.get("add_tags") or []:
            if not tag.get("key"):
                raise ApiError("INVALID_PARAMETER_VALUE", "Every tag needs a non-empty key.")
            tags[tag["key"]] = tag.get("value")
        doc["tags"] = [{"key": k, "value": v} if v is not None else {"key": k} for k, v in tags.items()]
        engine.save(doc)
        return {"tags": doc["tags"]}

    @app.put("/api/2.0/serving-endpoints/{name}/ai-gateway")
    async def put_ai_gateway(name: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_MANAGE")
        body = await json_body(request)
        _validate_rate_limits(body.get("rate_limits"))
        doc["ai_gateway"] = body
        engine.save(doc)
        return body

    @app.put("/api/2.0/serving-endpoints/{name}/rate-limits")
    async def put_rate_limits(name: str, request: Request):
        doc, _ = endpoint_for(request, name, "CAN_MANAGE")
        body = await json_body(request)
        _validate_rate_limits(body.get("rate_limits"))
        doc["rate_limits"] = list(body.get("rate_limits") or [])
        engine.save(doc)
        return {"rate_limits": doc["rate_limits"]}

    # permissions -------------------------------------------------------------------------------
    def endpoint_by_id(request: Request, endpoint_id: str, level: str) -> tuple[dict, Caller]:
        caller = caller_of(request)
        doc = next((d for d in engine.endpoints.values() if d["id"] == endpoint_id), None)
        if doc is None or level_of(doc, caller) == 0:
            raise ApiError("RESOURCE_DOES_NOT_EXIST", f"Serving endpoint with id '{endpoint_id}' does not exist.")
        require(doc, caller, level)
        return doc, caller

    def present_acl(doc: dict) -> dict:
        entries = [{"user_name": doc["creator"], "all_permissions": [
            {"permission_level": "CAN_MANAGE", "inherited": False}]}]
        for entry in doc.get("acl", []):
            principal = {k: entry[k] for k in ("user_name", "group_name", "service_principal_name") if k in entry}
            entries.append({**principal, "all_permissions": [
                {"permission_level": entry["permission_level"], "inherited": False}]})
        if admin_user != doc["creator"]:
            entries.append({"user_name": admin_user, "all_permissions": [
                {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/serving-endpoints/"]}]})
        return {"object_id": f"/serving-endpoints/{doc['id']}", "object_type": "serving-endpoint",
                "access_control_list": entries}

    def parse_acl(body: dict) -> list[dict]:
        acl = []
        for entry in body.get("access_control_list") or []:
            principals = [k for k in ("user_name", "group_name", "service_principal_name") if entry.get(k)]
            if len(principals) != 1:
                raise ApiError("INVALID_PARAMETER_VALUE",
                               "Each access control entry names exactly one of user_name, group_name, "
                               "service_principal_name.")
            if entry.get("permission_level") not in LEVELS:
                raise ApiError("INVALID_PARAMETER_VALUE",
                               f"Permission level {entry.get('permission_level')!r} is invalid; use one of "
                               f"{', '.join(LEVELS)}.")
            acl.append({principals[0]: entry[principals[0]], "permission_level": entry["permission_level"]})
        return acl

    @app.get("/api/2.0/permissions/serving-endpoints/{endpoint_id}/permissionLevels")
    async def permission_levels(endpoint_id: str, request: Request):
        endpoint_by_id(request, endpoint_id, "CAN_VIEW")
        return {"permission_levels": [{"permission_level": k, "description": v}
                                      for k, v in LEVEL_DESCRIPTIONS.items()]}

    @app.get("/api/2.0/permissions/serving-endpoints/{endpoint_id}")
    async def get_permissions(endpoint_id: str, request: Request):
        doc, _ = endpoint_by_id(request, endpoint_id, "CAN_VIEW")
        return present_acl(doc)

    @app.put("/api/2.0/permissions/serving-endpoints/{endpoint_id}")
    async def set_permissions(endpoint_id: str, request: Request):
        doc, _ = endpoint_by_id(request, endpoint_id, "CAN_MANAGE")
        doc["acl"] = parse_acl(await json_body(request))
        engine.save(doc)
        return present_acl(doc)

    @app.patch("/api/2.0/permissions/serving-endpoints/{endpoint_id}")
    async def update_permissions(endpoint_id: str, request: Request):
        doc, _ = endpoint_by_id(request, endpoint_id, "CAN_MANAGE")
        merged = {_principal(e): e for e in doc.get("acl", [])}
        for entry in parse_acl(await json_body(request)):
            merged[_principal(entry)] = entry
        doc["acl"] = list(merged.values())
        engine.save(doc)
        return present_acl(doc)

    # tokens (so that several users can be simulated for ACLs) ----------------------------------
    @app.post("/api/2.0/token-management/on-behalf-of/tokens")
    async def create_token(request: Request):
        caller = caller_of(request)
        if not caller.is_admin:
            raise ApiError("PERMISSION_DENIED", "Only the local admin can create tokens for other users.", 403)
        body = await json_body(request)
        user = body.get("application_id") or body.get("user_name")
        if not user:
            raise ApiError("INVALID_PARAMETER_VALUE", "Name the user: application_id (or user_name).")
        import secrets

        token = "dapi" + secrets.token_hex(16)
        engine.store.add_token(token, user, False, body.get("comment", ""), now_ms())
        return {"token_value": token, "token_info": {"token_id": token[-8:], "created_by_username": caller.user,
                                                      "owner_id": user, "comment": body.get("comment", "")}}

    @app.get("/api/2.0/jupyter-serving/backend")
    async def backend_info(request: Request):
        caller_of(request)
        return {"cloud": cloud, "gpus": engine.gpu_count, "scale_to_zero_idle_s": idle_timeout_s,
                "mlflow_uri": paths.mlflow_uri, "time": time.time()}

    # data plane: a bare ASGI front for invocations, the hot path, so that no web-framework routing,
    # validation or dependency injection runs per request; everything else goes to the REST app.
    async def invoke(scope, receive, send, name: str, entity: str | None) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = _HeadersOnly(Headers(scope=scope))
        try:
            doc, caller = endpoint_for(request, name, "CAN_QUERY")
            response = await gateway.invoke(doc, b"".join(chunks), request.headers.get("content-type"),
                                            caller.user, entity)
        except (ApiError, GatewayError) as exc:
            response = error_response(exc.status, exc.error_code, exc.message)
        except RuleViolation as exc:
            response = error_response(_STATUS.get(exc.error_code, 400), exc.error_code, exc.message)
        await response(scope, receive, send)

    async def front(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INVOKE_PATH.match(scope["path"])
            if match:
                await invoke(scope, receive, send, match.group(1), match.group(2))
                return
        await app(scope, receive, send)

    front.state = app.state
    return front


_INVOKE_PATH = re.compile(r"^/serving-endpoints/([^/]+)(?:/served-models/([^/]+))?/invocations/?$")


class _HeadersOnly:
    """What the auth helpers read of a request: its headers."""

    def __init__(self, headers: Headers):
        self.headers = headers


def _principal(entry: dict) -> tuple:
    for key in ("user_name", "group_name", "service_principal_name"):
        if key in entry:
            return key, entry[key]
    return ("", "")


def _validate_rate_limits(limits) -> None:
    for limit in limits or []:
        calls = limit.get("calls") if isinstance(limit, dict) else None
        if not isinstance(calls, int) or calls < 0:
            raise ApiError("INVALID_PARAMETER_VALUE", "Each rate limit needs 'calls', a non-negative integer.")
        if limit.get("renewal_period", "minute") not in ("minute", "hour", "day"):
            raise ApiError("INVALID_PARAMETER_VALUE", "rate limit renewal_period must be 'minute'.")
        if limit.get("key", "endpoint") not in ("user", "endpoint", "user_group", "service_principal"):
            raise ApiError("INVALID_PARAMETER_VALUE", "rate limit key must be 'user' or 'endpoint'.")


__all__ = ["create_app"]
