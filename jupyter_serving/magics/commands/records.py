"""What an endpoint recorded: `%serve payloads` (its inference table), `%serve usage` (tokens and
requests per user and served entity) and `%serve metrics` (`--watch`: a live chart)."""
from __future__ import annotations

import re
from typing import Any

from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import MagicUsageError
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SINCE_HELP = "only rows from then on: 10m, 2h, 1d, an ISO time (UTC) or epoch milliseconds"


def _store(ctx: Context, output: str | None, value: Any) -> Any:
    """`value`, or None after storing it in the notebook variable `output` (-o VAR)."""
    if output is None:
        return value
    if not _IDENT.match(output):
        raise MagicUsageError(f"-o {output}: not a valid variable name", "Use a Python identifier, e.g. -o rows.")
    ctx.user_ns[output] = value
    return None


def _common(p: CommandParser, *, limit: bool) -> None:
    p.add_argument("name")
    p.add_argument("--since", metavar="WHEN", help=SINCE_HELP)
    if limit:
        p.add_argument("--limit", type=int, default=100, metavar="N", help="the newest N rows (default 100)")
    p.add_argument("--warehouse", metavar="ID", help="Databricks: the SQL warehouse to read the table with "
                                                     "(default: the first running one)")
    p.add_argument("-o", "--output", metavar="VAR", help="store the DataFrame in VAR, show nothing")


@command("payloads", "the inference table: `payloads NAME [--since 10m] [--limit N]` (requests and responses)",
         arguments=lambda p: _common(p, limit=True), takes_name=True,
         description="The endpoint's inference table (AI Gateway), newest rows last: request, response (and their "
                     "text for chat models), status, latency, served entity, client_request_id.")
def payloads(ctx: Context, opts):
    frame = ctx.client().payloads(opts.name, since=opts.since, limit=opts.limit, warehouse_id=opts.warehouse)
    return _store(ctx, opts.output, frame)


def _usage_arguments(p: CommandParser) -> None:
    _common(p, limit=False)
    p.add_argument("--rows", action="store_true", help="every usage row instead of the totals")


@command("usage", "usage tracking: tokens and requests per user and served entity (`--rows` for each request)",
         arguments=_usage_arguments, takes_name=True,
         description="The endpoint's usage (AI Gateway usage tracking): requests, errors, input and output tokens "
                     "per requester and served entity.")
def usage(ctx: Context, opts):
    client = ctx.client()
    if opts.rows:
        frame = client.usage(opts.name, since=opts.since, warehouse_id=opts.warehouse)
    else:
        frame = client.usage_summary(opts.name, since=opts.since, warehouse_id=opts.warehouse)
    return _store(ctx, opts.output, frame)


def _metrics_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--watch", action="store_true",
                   help="a live chart (QPS, latency p50/p90/p99, 4xx/5xx, in flight); the kernel stays free")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between two reads (default 2)")
    p.add_argument("--duration", type=float, default=300.0, metavar="S",
                   help="stop watching after S seconds (default 300)")
    p.add_argument("-o", "--output", metavar="VAR", help="store the metrics (with --watch: the watch, "
                                                         "whose .frame holds the windows, .stop() ends it) in VAR")


@command("metrics", "an endpoint's metrics per served entity; `--watch` charts them live",
         arguments=_metrics_arguments, takes_name=True,
         description="The endpoint's Prometheus metrics per served entity (requests, 4xx, 5xx, in flight, latency "
                     "percentiles), or with --watch a live chart over time, updated in place.")
def metrics(ctx: Context, opts):
    if opts.interval <= 0 or opts.duration <= 0:
        raise MagicUsageError("--interval and --duration must be positive", "e.g. --interval 2 --duration 120.")
    client = ctx.client()
    if not opts.watch:
        return _store(ctx, opts.output, client.metrics(opts.name))
    from jupyter_serving.widgets.metrics_watch import MetricsWatch

    if opts.output is not None and not _IDENT.match(opts.output):
        _store(ctx, opts.output, None)  # says what is wrong with the name
    watch = MetricsWatch(client, opts.name, interval=opts.interval, duration=opts.duration).start()
    _store(ctx, opts.output, watch)
    return None
