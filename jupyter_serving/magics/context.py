"""What a `%serve` command runs with: the client, the notebook's variables, the settings, waiting."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_serving.magics.completion import EndpointNames
from jupyter_serving.magics.progress import Progress


@dataclass
class Context:
    shell: Any  # the InteractiveShell (None outside IPython)
    ns: dict  # the user's and the cell's local variables (for `$var` arguments)
    names: EndpointNames  # the completion cache of endpoint names
    data_dir: str | None  # ServeMagics.data_dir
    wait_timeout: float  # ServeMagics.wait_timeout
    query_timeout: float  # ServeMagics.query_timeout

    @property
    def user_ns(self) -> dict:
        return self.shell.user_ns if self.shell is not None else {}

    def client(self):
        """The current client; a local backend that went away is started again."""
        from jupyter_serving import api
        from jupyter_serving.client import localctl
        from jupyter_serving.client.connection import LOCAL

        client = api.get_client() if self.data_dir is None else (api.current_client() or api.connect(
            data_dir=self.data_dir))
        target = client.target
        if (client.is_local and target is not None and target.kind == LOCAL
                and localctl.needs_restart(target.data_dir, client.host)):
            client = api.connect(local=True, data_dir=target.data_dir)
        client.query_timeout = float(self.query_timeout)
        return client

    def wait(self, call: Callable[..., Any], name: str, *, verb: str, doing: str, no_wait: bool = False,
             timeout: float | None = None) -> Any:
        """`call(wait=..., [on_progress=..., timeout=...])`, showing progress while it waits.

        Ctrl-C stops waiting, not the deployment: it says so and returns None.
        """
        if no_wait:
            return call(wait=False)
        try:
            return call(wait=True, on_progress=Progress(self.shell, verb),
                        timeout=float(timeout if timeout is not None else self.wait_timeout))
        except KeyboardInterrupt:
            print(f"Stopped waiting; endpoint '{name}' keeps {doing}. "
                  f"Follow it with `%serve status {name} --watch`.")
            return None
