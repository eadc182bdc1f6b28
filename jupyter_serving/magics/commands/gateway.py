"""`%serve gateway NAME [flags]`: show or change an endpoint's AI Gateway settings (usage tracking, an
inference table, rate limits, guardrails, fallbacks); the same flags work on `%serve create`."""
from __future__ import annotations

from jupyter_serving.magics.context import Context
from jupyter_serving.magics.genai_options import (
    GATEWAY_EPILOG,
    GatewaySettings,
    add_gateway_arguments,
    complete_gateway_values,
    gateway_changes,
)
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command

DESCRIPTION = ("Show an endpoint's AI Gateway settings, or change the ones given (the others are kept; --replace "
               "starts from none). " + GATEWAY_EPILOG)


def _arguments(p: CommandParser) -> None:
    p.add_argument("name")
    add_gateway_arguments(p, changing=True)


@command("gateway", "AI Gateway: `gateway NAME [--usage-tracking] [--rate-limit '100/min per user'] [--pii mask] ...`",
         arguments=_arguments, takes_name=True, description=DESCRIPTION, complete=complete_gateway_values)
def gateway(ctx: Context, opts):
    client = ctx.client()
    changes = gateway_changes(opts)
    if changes is None and not opts.replace:
        return GatewaySettings(opts.name, client.ai_gateway(opts.name))
    settings = client.set_ai_gateway(opts.name, replace=opts.replace, **(changes or {}))
    return GatewaySettings(opts.name, settings)
