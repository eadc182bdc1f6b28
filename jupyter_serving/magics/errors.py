"""The errors the magics raise themselves: bad arguments, an invalid endpoint name, and `-h`.

Every one is a `ServingError` shown as one line (see `ServeMagics.raise_errors`), except
`HelpShown`, which only stops a command quietly after argparse printed its help.
"""
from __future__ import annotations

import re

from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.core.rules import RuleViolation, validate_endpoint_name


class MagicUsageError(InvalidInputError):
    """Bad magic arguments (argparse), reported like every other expected error."""


class HelpShown(Exception):
    """argparse printed help (-h): stop quietly."""


def endpoint_name(name: str) -> str:
    """`name` if it is a valid endpoint name, else an `InvalidInputError` that says how to fix it."""
    try:
        validate_endpoint_name(name)
    except RuleViolation as err:
        hint = "" if re.search(r"\b(use|choose)\b", err.message) else "Name the endpoint, e.g. `%serve status NAME`."
        raise InvalidInputError(err.message, hint, error_code=err.error_code) from None
    return name
