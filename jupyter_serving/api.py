"""The plain Python API: model serving over databricks-sdk's `WorkspaceClient`. No IPython here.

    from jupyter_serving import api
    client = api.connect()                       # or api.connect(local=True), connect(profile="dev")
    client.create("iris", model="main.ml.iris", version=1)
    client.query("iris", df)                     # -> QueryResult (.frame is a DataFrame)

The same client backs the magics, the widgets and the JupyterLab panel. Every expected failure
raises a `ServingError` (see `jupyter_serving.core.errors`) whose message is one line: what is wrong and
how to fix it (`err.one_line("magic")` says the fix in `%serve` terms). This module is the public
facade; the client lives in `jupyter_serving.client` (service, endpoints, deploy, waiting, query, admin).
"""
from __future__ import annotations

from jupyter_serving.client.base import DEFAULT_QUERY_TIMEOUT, DEFAULT_WAIT_TIMEOUT, ProgressCallback
from jupyter_serving.client.chat_stream import ChatStream
from jupyter_serving.client.checks import check_endpoint_name, check_entity_name
from jupyter_serving.client.service import ServingClient
from jupyter_serving.client.session import connect, current_client, disconnect, get_client, set_client
from jupyter_serving.core.chat import ChatAnswer, ChatDelta
from jupyter_serving.core.errors import ServingError
from jupyter_serving.core.metrics import MetricsSnapshot
from jupyter_serving.core.results import QueryResult
from jupyter_serving.core.rules import served_entity
from jupyter_serving.core.status import EndpointStatus
from jupyter_serving.core.templates import request_template_from_openapi

__all__ = [
    "DEFAULT_QUERY_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "ChatAnswer",
    "ChatDelta",
    "ChatStream",
    "EndpointStatus",
    "MetricsSnapshot",
    "ProgressCallback",
    "QueryResult",
    "ServingClient",
    "ServingError",
    "check_endpoint_name",
    "check_entity_name",
    "connect",
    "current_client",
    "disconnect",
    "get_client",
    "request_template_from_openapi",
    "served_entity",
    "set_client",
]
