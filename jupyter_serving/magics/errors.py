"""The errors the magics raise themselves: bad arguments, an invalid endpoint name, and `-h`.

Every one is a `ServingError` shown as one line (see `ServeMagics.raise_errors`), except
`HelpShown`, which only stops a command quietly after argparse printed its help.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from jupyter_serving.core.errors import Hint, InvalidInputError, NotFoundError, ServingError
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


def did_you_mean(err: ServingError, names: Callable[[], list[str]], command: Callable[[str], str]) -> ServingError:
    """A missing endpoint's error with the closest existing names ("Did you mean 'iris'?"); `err`
    itself for any other error. `names()` lists the endpoints; `command(name)` is the line the user
    typed with the suggested name. The one place every NAME-taking command uses."""
    missing = getattr(err, "endpoint", None)
    if not isinstance(err, NotFoundError) or not missing:
        return err
    try:
        existing = names()
    except ServingError:
        return err
    close = difflib.get_close_matches(missing, existing, n=3, cutoff=0.6)
    if not close:
        lower = [n for n in existing if n.lower() == missing.lower()]
        close = lower[:1]
    if not close:
        return err
    alternatives = " or ".join(f"'{n}'" for n in close)
    found = NotFoundError(f"Endpoint '{missing}' does not exist. Did you mean {alternatives}?", Hint(
        python=err.fix.python, magic=f"Run `{command(close[0])}`."), error_code=err.error_code)
    found.endpoint = missing  # type: ignore[attr-defined]
    return found
