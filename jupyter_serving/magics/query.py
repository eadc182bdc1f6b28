"""`%%query NAME [options]` with a JSON, CSV or `$var` body below, and `%query NAME BODY` on one line.

A chat turn (`--chat TEXT`, or a `messages`/`input` body to a chat model or agent) streams into the cell
and ends with the answer's DataFrame: see `chat_query`.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Any

from jupyter_serving.core.errors import NotFoundError
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import MagicUsageError, did_you_mean
from jupyter_serving.magics.parsing import CommandParser, split_words

USAGE = "%%query NAME [--entity E] [-o VAR] [--raw] [--timeout S]"
CHAT_USAGE = '%query NAME --chat "text" [--no-stream] [--system S] [--temperature T] [--max-tokens N] [--stop W]'
_CHAT_FLAG = re.compile(r"(?:^|\s)--chat(?:[\s=]|$)")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@cache
def parser() -> CommandParser:
    p = CommandParser("%%query", f"Usage: {USAGE}, or {CHAT_USAGE}.")
    p.add_argument("name")
    p.add_argument("--entity", help="query one served entity, ignoring the traffic split")
    p.add_argument("-o", "--output", metavar="VAR", help="store the DataFrame in VAR, show nothing")
    p.add_argument("--raw", action="store_true", help="the JSON response instead of a DataFrame")
    p.add_argument("--timeout", type=float, help="seconds to wait for the answer (streaming: between two pieces)")
    chat = p.add_argument_group("chat models and agents")
    chat.add_argument("--chat", metavar="TEXT", help="send TEXT as the user's message (the cell: more body fields)")
    chat.add_argument("--no-stream", action="store_true", help="one request instead of streaming the answer")
    chat.add_argument("--system", metavar="TEXT", help="a system prompt")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int, metavar="N")
    chat.add_argument("--stop", action="append", metavar="WORD", help="a stop sequence (repeatable)")
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
    if _CHAT_FLAG.search(line):  # the text after --chat is no body, whatever it contains
        head, body = line, (cell or "")
    elif cell is None or not cell.strip():
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
    client = ctx.client()
    try:
        return _dispatch(ctx, opts, client, body, cell)
    except NotFoundError as err:
        magic = "%%query" if cell is not None and cell.strip() else "%query"
        raise did_you_mean(err, client.names,
                           lambda new: f"{magic} " + line.strip().replace(opts.name, new, 1)) from None


def _dispatch(ctx: Context, opts, client, body: str, cell: str | None) -> Any:
    from jupyter_serving.magics.chat_query import run_chat, wants_chat

    parsed = None
    if opts.chat is None:
        from jupyter_serving.core.query_body import parse_body

        parsed = parse_body(body, ctx.ns)
    if wants_chat(opts, parsed.request if parsed else None, lambda: client.endpoint_task(opts.name)):
        return run_chat(ctx, opts, client, parsed.request if parsed else None, cell)
    result = client.query(opts.name, parsed, entity=opts.entity, timeout=opts.timeout)
    value = result.response if opts.raw else result.frame
    if opts.output:
        ctx.user_ns[opts.output] = value
        return None
    return value
