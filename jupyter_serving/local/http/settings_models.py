"""Request bodies of an endpoint's settings beside its served entities: email notifications, the telemetry
config, legacy auto-capture, the budget policy, provisioned model units (Pydantic only: `models.py`
builds on these). Objects Databricks defines completely (notifications, telemetry) refuse unknown fields,
so a typo is named instead of stored. Every bound is listed in README.md ("Limits").
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jupyter_serving.core.rules import MAX_MODEL_UNITS

MAX_EMAIL = 320  # RFC 5321: 64 for the local part, 255 for the domain
MAX_EMAILS = 100  # per list (on_update_success, on_update_failure)
MAX_BUDGET_POLICY_ID = 64
MAX_UC_PART = 255
MAX_TABLE_NAME = 3 * MAX_UC_PART + 2  # catalog.schema.table
MAX_PROFILE_ID = 255

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
BUDGET_POLICY_RE = re.compile(r"[A-Za-z0-9-]+")
TABLE_RE = re.compile(r"[^.\s`]{1,255}\.[^.\s`]{1,255}\.[^.\s`]{1,255}")
TELEMETRY_FEATURES = ("TELEMETRY_FEATURE_INFERENCE_TABLE", "TELEMETRY_FEATURE_LOGS", "TELEMETRY_FEATURE_METRICS",
                      "TELEMETRY_FEATURE_TRACES")


def _email(value: str) -> str:
    if not EMAIL_RE.fullmatch(value):
        raise PydanticCustomError("email", "Use an email address (name@domain)")
    return value


def _budget_policy(value: str) -> str:
    if not BUDGET_POLICY_RE.fullmatch(value):
        raise PydanticCustomError("budget_policy_id", "A budget policy id is made of letters, digits and '-' "
                                                      "(a UUID)")
    return value


def _table(value: str) -> str:
    if not TABLE_RE.fullmatch(value):
        raise PydanticCustomError("table_name", "Use a three-level Unity Catalog name: catalog.schema.table")
    return value


Email = Annotated[StrictStr, Field(max_length=MAX_EMAIL), AfterValidator(_email)]
Emails = Annotated[list[Email], Field(max_length=MAX_EMAILS)]
BudgetPolicyId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_BUDGET_POLICY_ID),
                           AfterValidator(_budget_policy)]
TableName = Annotated[StrictStr, Field(max_length=MAX_TABLE_NAME), AfterValidator(_table)]
ModelUnits = Annotated[StrictInt, Field(ge=1, le=MAX_MODEL_UNITS)]  # any whole number (README.md)
UcPart = Annotated[StrictStr, Field(max_length=MAX_UC_PART)]


class Closed(BaseModel):
    """An object Databricks defines completely: an unknown field is refused, naming it."""

    model_config = ConfigDict(extra="forbid")


class EmailNotifications(Closed):
    on_update_success: Emails | None = None
    on_update_failure: Emails | None = None


class AutoCaptureConfig(BaseModel):
    """Legacy inference tables: accepted when not enabled (`core.rules.validate_auto_capture`)."""

    model_config = ConfigDict(extra="allow")

    enabled: StrictBool | None = None
    catalog_name: UcPart | None = None
    schema_name: UcPart | None = None
    table_name_prefix: UcPart | None = None


class TelemetryInferenceTable(Closed):
    name: TableName | None = None
    sampling_fraction: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] | None = None


class TelemetryTableNames(Closed):
    annotations_table: TableName | None = None
    logs_table: TableName | None = None
    metrics_table: TableName | None = None
    traces_table: TableName | None = None


class TelemetryConfig(Closed):
    """`telemetry_config` of a create request and of `PATCH .../telemetry-config`: an existing profile
    (`telemetry_profile_id`) or the tables of a new one (`table_names`), not both."""

    enabled_telemetry_features: Annotated[list[Literal[TELEMETRY_FEATURES]],
                                          Field(max_length=len(TELEMETRY_FEATURES))] | None = None
    inference_table_config: TelemetryInferenceTable | None = None
    table_names: TelemetryTableNames | None = None
    telemetry_profile_id: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PROFILE_ID)] | None = None

    @model_validator(mode="after")
    def _one_profile(self) -> TelemetryConfig:
        if self.table_names is not None and self.telemetry_profile_id is not None:
            raise PydanticCustomError("telemetry_profile", "Set either telemetry_profile_id (an existing profile) "
                                                           "or table_names (a new profile), not both")
        return self


class PatchNotifications(BaseModel):
    """The body of `PATCH .../notifications` (what it does not name is cleared, as Databricks does)."""

    model_config = ConfigDict(extra="ignore")

    email_notifications: EmailNotifications | None = None


class PatchTelemetryConfig(BaseModel):
    """The body of `PATCH .../telemetry-config` (without `telemetry_config` the config is removed)."""

    model_config = ConfigDict(extra="ignore")

    telemetry_config: TelemetryConfig | None = None
