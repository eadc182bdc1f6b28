"""The control plane's request bodies and query parameters, as Pydantic models (one place for all).

FastAPI validates every request against these before a route runs, so bad input is refused with a
Databricks 400 naming the field (see `errors.py`) instead of reaching the engine. They type and bound
what the backend uses; fields Databricks accepts that we do not model are kept (`extra="allow"`).
The routes hand the engine `dump(model)`: the fields the client sent (explicit nulls included, absent
ones absent) as a plain dict, as before, so the configuration rules of `jupyter_serving.core.rules`
(traffic, concurrency steps, names) stay the one place those are checked. Every bound is listed in README.md ("Limits").
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from jupyter_serving.core.rules import MAX_SERVED_ENTITIES

# Bounds (README.md, "Limits"). Endpoint and entity names are further held to 63 characters and their
# charset by core.rules; the looser bound here only keeps absurd input out of the rules' messages.
MAX_NAME = 255
MAX_ENTITY_NAME = 1024  # a Unity Catalog `catalog.schema.model` (255 per part) or a workspace model name
MAX_SHORT = 64  # enum-like strings: workload size and type, permission level, renewal period, key
MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS = 255, 1024, 50
MAX_DESCRIPTION = 4096
MAX_ARN = 2048
MAX_ENV_VARS, MAX_ENV_KEY, MAX_ENV_VALUE = 100, 255, 16_384
MAX_CONCURRENCY = 1024  # per served entity; a multiple of 4 (the step itself is a rule in core.rules)
MAX_ROUTES = 50
MAX_LISTED_ENTITIES = 10 * MAX_SERVED_ENTITIES  # a hard bound; the rule (at most 10) answers first
MAX_RATE_LIMITS, MAX_CALLS = 20, 1_000_000_000
MAX_ACL = 200
MAX_COMMENT = 1024
MAX_CONFIG_VERSION = 2**31 - 1

ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def text(max_length: int) -> Any:
    """A JSON string of at most `max_length` characters (numbers and booleans are refused, not coerced)."""
    return Annotated[StrictStr, Field(max_length=max_length)]


def _env_key(key: str) -> str:
    if not ENV_KEY_RE.match(key):
        raise PydanticCustomError("env_var_name", "Environment variable names use letters, digits and '_' "
                                                  "and do not start with a digit")
    return key


def _env_value(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("env_var_value", "Environment variable values cannot contain NUL characters")
    return value


def _version_string(value: Any) -> Any:
    """Entity versions are strings in the API; an integer (as some callers send) is taken as its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


EnvKey = Annotated[StrictStr, Field(max_length=MAX_ENV_KEY), AfterValidator(_env_key)]
EnvValue = Annotated[StrictStr, Field(max_length=MAX_ENV_VALUE), AfterValidator(_env_value)]
Version = Annotated[StrictStr, BeforeValidator(_version_string), Field(max_length=MAX_SHORT)]
Concurrency = Annotated[StrictInt, Field(ge=0, le=MAX_CONCURRENCY)]
JsonObject = dict[str, Any]


class Open(BaseModel):
    """A request object: its typed fields are checked, fields Databricks accepts beyond them are kept."""

    model_config = ConfigDict(extra="allow")


class ServedBase(Open):
    """Fields a served entity and a (deprecated) served model share."""

    name: text(MAX_NAME) | None = None
    workload_size: text(MAX_SHORT) | None = None
    workload_type: text(MAX_SHORT) | None = None
    scale_to_zero_enabled: StrictBool | None = None
    min_provisioned_concurrency: Concurrency | None = None
    max_provisioned_concurrency: Concurrency | None = None
    environment_vars: Annotated[dict[EnvKey, EnvValue], Field(max_length=MAX_ENV_VARS)] | None = None
    instance_profile_arn: text(MAX_ARN) | None = None


class ServedEntity(ServedBase):
    entity_name: text(MAX_ENTITY_NAME) | None = None
    entity_version: Version | None = None
    external_model: JsonObject | None = None


class ServedModel(ServedBase):
    model_name: text(MAX_ENTITY_NAME) | None = None
    model_version: Version | None = None


class Route(Open):
    served_model_name: text(MAX_NAME) | None = None
    served_entity_name: text(MAX_NAME) | None = None
    traffic_percentage: StrictInt | None = None


class TrafficConfig(Open):
    routes: Annotated[list[Route], Field(max_length=MAX_ROUTES)] | None = None


class EndpointConfig(Open):
    """`config` of a create request, and the body of `PUT .../config`."""

    served_entities: Annotated[list[ServedEntity], Field(max_length=MAX_LISTED_ENTITIES)] | None = None
    served_models: Annotated[list[ServedModel], Field(max_length=MAX_LISTED_ENTITIES)] | None = None
    traffic_config: TrafficConfig | None = None
    auto_capture_config: JsonObject | None = None


class UpdateConfig(EndpointConfig):
    config: EndpointConfig | None = None  # the nested form some callers send


class Tag(Open):
    key: text(MAX_TAG_KEY) | None = None
    value: text(MAX_TAG_VALUE) | None = None


class RateLimit(Open):
    calls: Annotated[StrictInt, Field(le=MAX_CALLS)] | None = None
    renewal_period: text(MAX_SHORT) | None = None
    key: text(MAX_SHORT) | None = None


RateLimits = Annotated[list[RateLimit], Field(max_length=MAX_RATE_LIMITS)]


class AiGateway(Open):
    """`ai_gateway` of a create request, and the body of `PUT .../ai-gateway`."""

    rate_limits: RateLimits | None = None
    usage_tracking_config: JsonObject | None = None
    inference_table_config: JsonObject | None = None
    guardrails: JsonObject | None = None
    fallback_config: JsonObject | None = None


class CreateEndpoint(Open):
    name: text(MAX_NAME) | None = None
    config: EndpointConfig | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    ai_gateway: AiGateway | None = None
    rate_limits: RateLimits | None = None
    route_optimized: StrictBool | None = None
    description: text(MAX_DESCRIPTION) | None = None
    budget_policy_id: text(MAX_NAME) | None = None
    email_notifications: JsonObject | None = None


class PatchTags(Open):
    add_tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    delete_tags: Annotated[list[text(MAX_TAG_KEY)], Field(max_length=MAX_TAGS)] | None = None


class PutRateLimits(Open):
    rate_limits: RateLimits | None = None


class AccessControl(Open):
    user_name: text(MAX_NAME) | None = None
    group_name: text(MAX_NAME) | None = None
    service_principal_name: text(MAX_NAME) | None = None
    permission_level: text(MAX_SHORT) | None = None


class Permissions(Open):
    access_control_list: Annotated[list[AccessControl], Field(max_length=MAX_ACL)] | None = None


class TokenRequest(Open):
    application_id: text(MAX_NAME) | None = None
    user_name: text(MAX_NAME) | None = None
    comment: text(MAX_COMMENT) | None = None
    lifetime_seconds: StrictInt | None = None


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class BuildLogsQuery(BaseModel):
    """Query parameters of `GET .../build-logs` (which config's build; the latest when absent)."""

    model_config = ConfigDict(extra="ignore")

    config_version: Annotated[Annotated[int, Field(ge=1, le=MAX_CONFIG_VERSION)] | None,
                              BeforeValidator(_blank_is_none)] = None


def dump(model: BaseModel) -> dict:
    """What the client sent, validated, as the plain dict the engine takes (absent fields stay absent)."""
    return model.model_dump(exclude_unset=True)

