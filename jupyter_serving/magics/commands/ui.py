"""`%serve ui`: the form that creates an endpoint (model, GPU workload, concurrency, traffic)."""
from __future__ import annotations

from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _arguments(p: CommandParser) -> None:
    p.add_argument("name", nargs="?", help="endpoint name (default: from the model)")
    p.add_argument("--model", "-m", help="preselect a registered model")
    p.add_argument("--version", help="preselect its version")
    p.add_argument("--workload-type", help="preselect a workload type")
    p.add_argument("--kind", choices=("model", "agent", "external", "pt"), default="model",
                   help="what to serve: a registered model, an agent, an external model, provisioned throughput")


@command("ui", "a form to create an endpoint (model, agent, external model, provisioned throughput; AI Gateway)",
         arguments=_arguments)
def ui(ctx: Context, opts):
    from jupyter_serving.widgets import create_form

    return create_form(ctx.client(), model=opts.model, version=opts.version, name=opts.name,
                       workload_type=opts.workload_type, kind=opts.kind)
