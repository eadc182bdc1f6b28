"""`%%query NAME [options]` with a JSON, CSV or `$var` body below, and `%query NAME BODY` on one line."""
from __future__ import annotations

import re
from functools import cache
from typing import Any

from jupyter_serving.core.errors import NotFoundError
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import MagicUsageError, did_you_mean
from jupyter_serving.magics.parsing import CommandParser, split_words

USAGE = "%%query NAME [--entity E] [-o VAR] [--raw] [--timeout S]"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def parser() -> CommandParser:
    p = CommandParser("%%query", f"Usage: {USAGE}.")
    p.add_argument("name")
    p.add_argument("--entity", help="query one served entity, ignoring the traffic split")
    p.add_argument("-o", "--output", metavar="VAR", help="store the DataFrame in VAR, show nothing")
    p.add_argument("--raw", action="store_true", help="the JSON response instead of a DataFrame")
    p.add_argument("--timeout", type=float, help="seconds to wait for the answer")
    return p


def split_query_line(line: str) -> tuple[str, str]:
    """Split `NAME [options] BODY [options after a $var]` into (options, body)."""
    m = re.search(r"(?:^|\s)([$\[{])", line)
    if not m:
        return line, ""
    start = m.start(1)
    head, body = line[:start], line[start:].strip()
    if body.startswith("$"):
        first, _, rest = body.partition(" ")
        return f"{head} {rest}", first
    return head, body


def run_query(ctx: Context, line: str, cell: str | None) -> Any:
    """The DataFrame (or, with --raw, the JSON response); with -o VAR it is stored and None returned."""
    if cell is None or not cell.strip():
        head, body = split_query_line(line)
        if not body and cell is None:
            raise MagicUsageError("%query needs a body on the line",
                                  "Write `%query NAME $df` (or JSON), or use the cell magic %%query "
                                  "with the body below.")
    else:
        head, body = line, cell
    opts = parser().parse_args(split_words(head))
    if opts.output is not None and not _IDENT.match(opts.output):
        raise MagicUsageError(f"-o {opts.output}: not a valid variable name", "Use a Python identifier, e.g. -o preds.")
    from jupyter_serving.core.query_body import parse_body

    parsed = parse_body(body, ctx.ns)
    client = ctx.client()
    try:
        result = client.query(opts.name, parsed, entity=opts.entity, timeout=opts.timeout)
    except NotFoundError as err:
        magic = "%%query" if cell is not None and cell.strip() else "%query"
        raise did_you_mean(err, client.names,
                           lambda new: f"{magic} " + line.strip().replace(opts.name, new, 1)) from None
    value = result.response if opts.raw else result.frame
    if opts.output:
        ctx.user_ns[opts.output] = value
        return None
    return value
