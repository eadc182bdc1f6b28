"""IPython magics: `%serve <subcommand>` and `%%query` / `%query`, thin parsers over `api`.

`%load_ext jupyter_serving` calls `load_ipython_extension` below. The layout:

- `serve.ServeMagics`: the magics and their settings (`%config ServeMagics.<trait>`);
- `registry` and `commands/`: one module per group of `%serve` subcommands;
- `query`: `%%query`; `completion`: tab completion; `progress`: progress while waiting;
- `parsing` and `errors`: argparse that never exits, and the errors the magics raise.

Loading stays light: these modules import IPython, traitlets, the standard library and
`jupyter_serving.core` only; the API (databricks-sdk, pandas) is imported on first use, and mlflow
never by the magics.
"""
from __future__ import annotations

import sys

from jupyter_serving.magics.errors import MagicUsageError
from jupyter_serving.magics.serve import ServeMagics

__all__ = ["MagicUsageError", "ServeMagics", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ip) -> None:
    """Register %serve and %%query/%query, completion, and say which backend will be used."""
    from jupyter_serving._version import __version__
    from jupyter_serving.client.connection import describe_default, uses_local_backend
    from jupyter_serving.client.registries import local_registry_uri, point_mlflow_at

    magics = ServeMagics(shell=ip)
    table = ip.magics_manager.magics
    own_kinds = {"serve": ("line",), "query": ("line", "cell")}
    foreign = {(kind, name): table[kind][name] for name, kinds in own_kinds.items() for kind in kinds
               if name in table[kind] and not isinstance(getattr(table[kind][name], "__self__", None), ServeMagics)}
    ip.register_magics(magics)
    # Never take over a magic the host already owns (jupysql overwrote Databricks' own %sql):
    # keep theirs and register ours under a prefixed name.
    names = {"serve": "serve", "query": "query"}
    for name, kinds in own_kinds.items():
        if not any((kind, name) in foreign for kind in kinds):
            continue
        names[name] = f"serving_{name}"
        for kind in kinds:
            table[kind][names[name]] = table[kind][name]
            if (kind, name) in foreign:
                table[kind][name] = foreign[(kind, name)]
            else:
                del table[kind][name]
    # IPython binds hooks to the shell: they are called as hook(shell, event).
    ip.set_hook("complete_command", lambda _shell, event: magics.complete_serve(event),
                str_key=f"%{names['serve']}")
    for key in (f"%{names['query']}", f"%%{names['query']}"):
        ip.set_hook("complete_command", lambda _shell, event: magics.complete_query(event), str_key=key)
    # Name the backend without connecting, starting or importing anything heavy (the API imports
    # pandas and databricks-sdk; reuse it only if it is loaded already).
    api_module = sys.modules.get("jupyter_serving.api")
    client = api_module.current_client() if api_module is not None else None
    where = client.backend if client is not None else describe_default(magics.data_dir)
    # Point MLflow at the local backend's registry now (not on the first %serve), so that a model
    # registered before the first %serve is where `%serve create` looks. A user's MLFLOW_* wins.
    if client is not None:
        target, local = client.target, client.is_local
    else:
        from jupyter_serving.client.connection import default_target

        target = default_target(magics.data_dir)
        local = uses_local_backend(target)
    if local:
        point_mlflow_at(local_registry_uri(target.data_dir if target is not None else magics.data_dir))
    print(f"jupyter-serving {__version__}: %{names['serve']} and %%{names['query']} will use {where}.")


def unload_ipython_extension(ip) -> None:
    table = ip.magics_manager.magics
    for kind in ("line", "cell"):
        for name in ("serve", "query", "serving_serve", "serving_query"):
            if isinstance(getattr(table[kind].get(name), "__self__", None), ServeMagics):
                del table[kind][name]
