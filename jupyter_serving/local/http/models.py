"""The control plane's request bodies and query parameters, as Pydantic models (one place for all, with
the endpoint settings' leaf types in `settings_models.py`).

FastAPI validates every request against these before a route runs, so bad input is refused with a
Databricks 400 naming the field (see `errors.py`) instead of reaching the engine. They type and bound
what the backend uses; fields Databricks accepts that we do not model are kept (`extra="allow"`).
The routes hand the engine `dump(model)`: the fields the client sent (explicit nulls included, absent
ones absent) as a plain dict, as before, so the configuration rules of `jupyter_serving.core.rules`
(traffic, concurrency steps, names) stay the one place those are checked. Every bound is listed in README.md ("Limits").
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jupyter_serving.core.ai_gateway import (
    MAX_COUNT,
    MAX_KEYWORD,
    MAX_KEYWORDS,
    MAX_PREFIX,
    MAX_RATE_LIMITS,
    MAX_UC_NAME,
    UC_NAME_CHARS,
)
from jupyter_serving.core.rules import MAX_SERVED_ENTITIES, SECRET_NAME_RE
from jupyter_serving.local.http.settings_models import (
    AutoCaptureConfig,
    BudgetPolicyId,
    EmailNotifications,
    ModelUnits,
    TelemetryConfig,
)
from jupyter_serving.local.secret_store import MAX_VALUE_BYTES

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
MAX_CALLS = MAX_COUNT  # bounds a limit's tokens too
MAX_GUARDRAIL_WORDS, MAX_GUARDRAIL_WORD = MAX_KEYWORDS, MAX_KEYWORD  # invalid_keywords, valid_topics
MAX_ACL = 200
MAX_COMMENT = 1024
MAX_CONFIG_VERSION = 2**31 - 1
MAX_URL = 2048
MAX_SECRET_REF = 512  # `{{secrets/<scope>/<key>}}`, each name at most 128 characters
MAX_API_KEY = 16_384  # a plaintext API key
MAX_SECRET_NAME = 128

ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
UC_NAME_RE = UC_NAME_CHARS


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


class OpenAiConfig(BaseModel):
    """`openai_config` of an external model: Databricks' fields, all of them (any other is refused: a typo
    would otherwise go unnoticed until the provider refuses the key). What they must hold is checked by
    `core.rules.validate_external_model`."""

    model_config = ConfigDict(extra="forbid")

    openai_api_base: text(MAX_URL) | None = None
    openai_api_key: text(MAX_SECRET_REF) | None = None
    openai_api_key_plaintext: text(MAX_API_KEY) | None = None
    openai_api_type: text(MAX_SHORT) | None = None
    openai_api_version: text(MAX_SHORT) | None = None
    openai_deployment_name: text(MAX_NAME) | None = None
    openai_organization: text(MAX_NAME) | None = None
    microsoft_entra_client_id: text(MAX_NAME) | None = None
    microsoft_entra_client_secret: text(MAX_SECRET_REF) | None = None
    microsoft_entra_client_secret_plaintext: text(MAX_API_KEY) | None = None
    microsoft_entra_tenant_id: text(MAX_NAME) | None = None


class ExternalModel(Open):
    """`external_model` of a served entity; other providers' configs are kept (and refused by the rules)."""

    name: text(MAX_ENTITY_NAME) | None = None
    provider: text(MAX_SHORT) | None = None
    task: text(MAX_SHORT) | None = None
    openai_config: OpenAiConfig | None = None


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
    external_model: ExternalModel | None = None
    provisioned_model_units: ModelUnits | None = None  # not with workload settings (core.rules)
    burst_scaling_enabled: StrictBool | None = None


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
    auto_capture_config: AutoCaptureConfig | None = None


class UpdateConfig(EndpointConfig):
    config: EndpointConfig | None = None  # the nested form some callers send


class Tag(Open):
    key: text(MAX_TAG_KEY) | None = None
    value: text(MAX_TAG_VALUE) | None = None


RateLimitCount = Annotated[StrictInt, Field(ge=0, le=MAX_CALLS)]


class RateLimit(Open):
    """A rate limit (endpoint `rate_limits` and `ai_gateway.rate_limits`): `calls` and/or `tokens` per
    minute; how limits go together (principals, duplicates) is checked by `core.rules.validate_rate_limits`."""

    calls: RateLimitCount | None = None
    tokens: RateLimitCount | None = None
    renewal_period: Literal["minute"] | None = None
    key: Literal["endpoint", "user", "user_group", "service_principal"] | None = None
    principal: text(MAX_NAME) | None = None

    @model_validator(mode="after")
    def _counts_something(self) -> RateLimit:
        if self.calls is None and self.tokens is None:
            raise PydanticCustomError("rate_limit_empty", "A rate limit needs calls or tokens (or both)")
        return self


RateLimits = Annotated[list[RateLimit], Field(max_length=MAX_RATE_LIMITS)]


def _uc_name(name: str) -> str:
    if not UC_NAME_RE.fullmatch(name):
        raise PydanticCustomError("uc_name", "Use letters, digits and '_' (a Unity Catalog name)")
    return name


def _not_blank(word: str) -> str:
    if not word.strip():
        raise PydanticCustomError("blank", "Entries must not be empty")
    return word


def _no_safety(enabled: bool) -> bool:
    if enabled:
        raise PydanticCustomError("safety_unavailable", "The safety filter (Llama Guard on Databricks) is not "
                                                        "available on the local backend: no local model can decide "
                                                        "it. Set safety to false or leave it out")
    return enabled


UcName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_UC_NAME), AfterValidator(_uc_name)]
GuardrailWords = Annotated[list[Annotated[StrictStr, Field(max_length=MAX_GUARDRAIL_WORD), AfterValidator(_not_blank)]],
                           Field(max_length=MAX_GUARDRAIL_WORDS)]


class UsageTrackingConfig(Open):
    enabled: StrictBool | None = None


class InferenceTableConfig(Open):
    """Payload logging to `{catalog_name}.{schema_name}.{table_name_prefix}_payload` (kept locally)."""

    enabled: StrictBool | None = None
    catalog_name: UcName | None = None
    schema_name: UcName | None = None
    table_name_prefix: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PREFIX),
                                 AfterValidator(_uc_name)] | None = None

    @model_validator(mode="after")
    def _named_when_enabled(self) -> InferenceTableConfig:
        missing = [f for f in ("catalog_name", "schema_name", "table_name_prefix") if getattr(self, f) is None]
        if self.enabled and missing:
            raise PydanticCustomError("inference_table_name", "An enabled inference table needs {missing}",
                                      {"missing": ", ".join(missing)})
        return self


class PiiBehavior(Open):
    behavior: Literal["NONE", "BLOCK", "MASK"] | None = None


class GuardrailParameters(Open):
    """The input or the output guardrails (see `local.aigateway.guardrails`)."""

    invalid_keywords: GuardrailWords | None = None
    valid_topics: GuardrailWords | None = None
    pii: PiiBehavior | None = None
    safety: Annotated[StrictBool, AfterValidator(_no_safety)] | None = None


class Guardrails(Open):
    input: GuardrailParameters | None = None
    output: GuardrailParameters | None = None


class FallbackConfig(Open):
    enabled: StrictBool


class AiGateway(Open):
    """`ai_gateway` of a create request, and the body of `PUT .../ai-gateway`."""

    rate_limits: RateLimits | None = None
    usage_tracking_config: UsageTrackingConfig | None = None
    inference_table_config: InferenceTableConfig | None = None
    guardrails: Guardrails | None = None
    fallback_config: FallbackConfig | None = None


class CreateEndpoint(Open):
    name: text(MAX_NAME) | None = None
    config: EndpointConfig | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    ai_gateway: AiGateway | None = None
    rate_limits: RateLimits | None = None
    route_optimized: StrictBool | None = None
    description: text(MAX_DESCRIPTION) | None = None
    budget_policy_id: BudgetPolicyId | None = None
    email_notifications: EmailNotifications | None = None
    telemetry_config: TelemetryConfig | None = None


class PtServedEntity(Open):
    """A served entity of a provisioned-throughput config; workload settings beside the units are refused
    by `core.rules` (an entity has one or the other)."""

    entity_name: text(MAX_ENTITY_NAME)
    entity_version: Version | None = None
    provisioned_model_units: ModelUnits
    burst_scaling_enabled: StrictBool | None = None
    name: text(MAX_NAME) | None = None


class PtConfig(Open):
    served_entities: Annotated[list[PtServedEntity], Field(min_length=1, max_length=MAX_LISTED_ENTITIES)]
    traffic_config: TrafficConfig | None = None


class CreatePtEndpoint(BaseModel):
    """The body of `POST .../pt` (the SDK's `create_provisioned_throughput_endpoint`): its fields only."""

    model_config = ConfigDict(extra="ignore")

    name: text(MAX_NAME)
    config: PtConfig
    ai_gateway: AiGateway | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    budget_policy_id: BudgetPolicyId | None = None
    email_notifications: EmailNotifications | None = None


class UpdatePtConfig(BaseModel):
    """The body of `PUT .../pt/{name}/config` (`update_provisioned_throughput_endpoint_config`)."""

    model_config = ConfigDict(extra="ignore")

    config: PtConfig


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


def _secret_name(name: str) -> str:
    if not SECRET_NAME_RE.fullmatch(name):
        raise PydanticCustomError("secret_name", "Use 1 to 128 letters, digits, '.', '-' and '_'")
    return name


def _string_value(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise PydanticCustomError("secret_size", f"A secret value holds at most {MAX_VALUE_BYTES} bytes")
    return value


def _bytes_value(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("secret_base64", "bytes_value must be base64-encoded") from None
    if len(raw) > MAX_VALUE_BYTES:
        raise PydanticCustomError("secret_size", f"A secret value holds at most {MAX_VALUE_BYTES} bytes")
    return raw


SecretName = Annotated[StrictStr, Field(max_length=MAX_SECRET_NAME), AfterValidator(_secret_name)]


class SecretScopeRef(Open):
    """The body of `POST /api/2.0/secrets/scopes/delete`."""

    scope: SecretName


class CreateSecretScope(SecretScopeRef):
    initial_manage_principal: text(MAX_NAME) | None = None
    scope_backend_type: text(MAX_SHORT) | None = None
    backend_azure_keyvault: JsonObject | None = None


class SecretRef(SecretScopeRef):
    """The body of `POST /api/2.0/secrets/delete`."""

    key: SecretName


class PutSecret(SecretRef):
    string_value: Annotated[StrictStr, Field(max_length=MAX_VALUE_BYTES), AfterValidator(_string_value)] | None = None
    bytes_value: Annotated[StrictStr, Field(max_length=(MAX_VALUE_BYTES + 2) // 3 * 4 + 4),
                           AfterValidator(_bytes_value)] | None = None


class ListSecretsQuery(BaseModel):
    """Query parameters of `GET /api/2.0/secrets/list`."""

    model_config = ConfigDict(extra="ignore")

    scope: SecretName


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


class BuildLogsQuery(BaseModel):
    """Query parameters of `GET .../build-logs` (which config's build; the latest when absent)."""

    model_config = ConfigDict(extra="ignore")

    config_version: Annotated[Annotated[int, Field(ge=1, le=MAX_CONFIG_VERSION)] | None,
                              BeforeValidator(_blank_is_none)] = None


MAX_RECORD_ROWS = 10_000
MAX_TIMESTAMP_MS = 2**53


class RecordsQuery(BaseModel):
    """Query parameters of `GET .../usage` and `GET .../inference-table`: rows from `since_ms` (epoch ms) on,
    at most `limit` of them, oldest first."""

    model_config = ConfigDict(extra="ignore")

    since_ms: Annotated[Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS)] | None,
                        BeforeValidator(_blank_is_none)] = None
    limit: Annotated[Annotated[int, Field(ge=1, le=MAX_RECORD_ROWS)] | None, BeforeValidator(_blank_is_none)] = 1000


def dump(model: BaseModel) -> dict:
    """What the client sent, validated, as the plain dict the engine takes (absent fields stay absent)."""
    return model.model_dump(exclude_unset=True)

