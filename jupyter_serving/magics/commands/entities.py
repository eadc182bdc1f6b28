"""`%serve add` and `%serve remove`: one-line canaries (one served entity in or out, the rest as is)."""
from __future__ import annotations

from jupyter_serving.magics.completion import Typed, workload_values
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _add_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("--model", "-m", required=True, help="the registered model to serve beside the others")
    p.add_argument("--version", help="its version (default: the latest)")
    p.add_argument("--entity-name", help="the new entity's name (default: MODEL-VERSION)")
    p.add_argument("--workload-type")
    p.add_argument("--workload-size")
    p.add_argument("--min-concurrency", type=int)
    p.add_argument("--max-concurrency", type=int)
    p.add_argument("--scale-to-zero", action="store_true")
    p.add_argument("--traffic", nargs="+", metavar="E=P", help="the whole new split (default: the new one gets 0%%)")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float)


def _traffic_values(typed: Typed) -> list[str]:
    if typed.prev == "--traffic" or (len(typed.words) > 3 and "--traffic" in typed.words[3:]):
        return [f"{e}=" for e in typed.names.entities(typed.words[2])]
    return workload_values(typed)


@command("add", "serve one more entity (a canary): `add NAME --model M --version V [--traffic E1=90 E2=10]`",
         arguments=_add_arguments, takes_name=True, complete=_traffic_values)
def add(ctx: Context, opts):
    from jupyter_serving.core.arguments import parse_traffic

    client = ctx.client()
    traffic = parse_traffic(opts.traffic) if opts.traffic else None
    status = ctx.wait(lambda **wait: client.add_entity(
        opts.name, opts.model, opts.version, entity_name=opts.entity_name, workload_type=opts.workload_type,
        workload_size=opts.workload_size, min_concurrency=opts.min_concurrency,
        max_concurrency=opts.max_concurrency, scale_to_zero=opts.scale_to_zero, traffic=traffic, **wait),
        opts.name, verb="Adding", doing="updating", no_wait=opts.no_wait, timeout=opts.timeout)
    if status is not None and not traffic and status.entity_names:
        from jupyter_serving.core import traffic_split

        added = status.entity_names[-1]
        if status.traffic.get(added) == 0 and len(status.traffic) > 1:
            split = traffic_split.rebalance_split(status.traffic, added, 10)
            print(f"'{added}' gets no traffic yet; send it some with "
                  f"`%serve traffic {opts.name} {traffic_split.describe(split)}`.")
    return status


def _remove_arguments(p: CommandParser) -> None:
    p.add_argument("name")
    p.add_argument("entity", help="the served entity to stop serving")
    p.add_argument("--traffic", nargs="+", metavar="E=P", help="the new split, when it is ambiguous")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--timeout", type=float)


def _complete_remove(typed: Typed) -> list[str]:
    if typed.index == 3:
        return typed.names.entities(typed.words[2])
    return [f"{e}=" for e in typed.names.entities(typed.words[2])] if "--traffic" in typed.words else []


@command("remove", "stop serving one entity: `remove NAME ENTITY [--traffic E1=100]`", arguments=_remove_arguments,
         takes_name=True, complete=_complete_remove)
def remove(ctx: Context, opts):
    from jupyter_serving.core.arguments import parse_traffic

    client = ctx.client()
    traffic = parse_traffic(opts.traffic) if opts.traffic else None
    return ctx.wait(lambda **wait: client.remove_entity(opts.name, opts.entity, traffic=traffic, **wait),
                    opts.name, verb="Removing", doing="updating", no_wait=opts.no_wait, timeout=opts.timeout)
