"""`%serve connect`: choose the backend (the local one, a profile, or a workspace URL)."""
from __future__ import annotations

from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _arguments(p: CommandParser) -> None:
    p.add_argument("where", nargs="?", choices=["local"], help="`local`: the embedded local backend")
    p.add_argument("--profile", help="a profile of ~/.databrickscfg")
    p.add_argument("--host", help="workspace URL (token from DATABRICKS_TOKEN or a matching profile)")
    p.add_argument("--data-dir", help="data dir of the local backend")


def _complete(typed: Typed) -> list[str]:
    return ["local", "--profile", "--host"] if typed.index == 2 else []


@command("connect", "choose the backend: `connect local`, `connect --profile NAME`, `connect --host URL`",
         arguments=_arguments, complete=_complete)
def connect(ctx: Context, opts) -> None:
    from jupyter_serving import api

    data_dir = opts.data_dir or ctx.data_dir
    if not (opts.where or opts.profile or opts.host):
        client = api.current_client()
        if client is not None:
            print(f"Connected to {client.backend}.")
        else:
            from jupyter_serving.client.connection import describe_default

            print(f"Not connected yet; the first command will use {describe_default(data_dir)}.")
        return
    client = api.connect(profile=opts.profile, host=opts.host, local=opts.where == "local",
                         data_dir=data_dir, query_timeout=ctx.query_timeout)
    ctx.names.forget()
    print(f"Connected to {client.backend}.")
