"""Client-side checks, run before anything is sent: names and configs validated by `core.rules`,
raised as `InvalidInputError` with a fix for each front-end."""
from __future__ import annotations

import re
from typing import Any

from jupyter_serving.core import rules
from jupyter_serving.core.errors import Hint, InvalidInputError

__all__ = ["check_endpoint_name", "check_entity_name", "check_config", "rule_error"]

NAME_HINT = Hint(python="Name the endpoint, e.g. `client.get('NAME')`.",
                 magic="Name the endpoint, e.g. `%serve status NAME`.")
ENTITY_NAME_HINT = Hint(python="Use the entity's name as `client.get(NAME).entity_names` lists it.",
                        magic="Use the entity's name as `%serve status NAME` shows it.")


def rule_error(err: rules.RuleViolation, hint: str | Hint = "") -> InvalidInputError:
    return InvalidInputError(err.message, hint, error_code=err.error_code)


def check_endpoint_name(name: Any) -> str:
    """`name` if it is a valid endpoint name, else InvalidInputError."""
    try:
        rules.validate_endpoint_name(name)
    except rules.RuleViolation as err:
        says_fix = re.search(r"\b(use|choose)\b", err.message)
        raise rule_error(err, "" if says_fix else NAME_HINT) from None
    return name


def check_entity_name(entity: Any) -> str:
    """`entity` if it is a valid served entity name, else InvalidInputError."""
    try:
        rules.validate_entity_name(entity)
    except rules.RuleViolation as err:
        raise rule_error(err, ENTITY_NAME_HINT) from None
    return entity


def check_config(config: dict, cloud: str) -> None:
    """Validate a core config with `rules` (external models and provisioned throughput included)."""
    try:
        rules.normalize_config(config, cloud)
    except rules.RuleViolation as err:
        raise rule_error(err) from None
