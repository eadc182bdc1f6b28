"""Notebook widgets for model serving (ipywidgets; imported only when used).

    from jupyter_serving.widgets import CreateEndpointForm, TrafficEditor, StatusPanel
    CreateEndpointForm()          # pick models, GPU workload, traffic; Create; Show code
    TrafficEditor("iris")         # sliders kept at 100 %, Apply
    StatusPanel("iris")           # live status, polled from a thread
    ChatPlayground("chat")        # streaming chat; ChatPlayground("a", "b") side by side

The magics call `create_form(client)` (`%serve ui`), `traffic_editor(name, client)`
(`%serve traffic NAME`), `status_panel(name, client)` (`%serve status NAME --watch`) and
`ChatPlayground(*names, client=client)` (`%serve chat NAME [NAME2 ...]`). Every long
operation runs in a background thread: the kernel stays free while a widget works.
"""
from jupyter_serving.client.catalog import ModelCatalog, ModelInfo, StaticCatalog
from jupyter_serving.widgets.chat_column import ChatColumn
from jupyter_serving.widgets.chat_playground import ChatPlayground
from jupyter_serving.widgets.create_form import CreateEndpointForm, create_form
from jupyter_serving.widgets.entity_editor import EntityEditor
from jupyter_serving.widgets.status_panel import StatusPanel, render_status, status_panel
from jupyter_serving.widgets.traffic_editor import TrafficEditor, TrafficSliders, traffic_editor

__all__ = [
    "ChatColumn",
    "ChatPlayground",
    "CreateEndpointForm",
    "EntityEditor",
    "ModelCatalog",
    "ModelInfo",
    "StaticCatalog",
    "StatusPanel",
    "TrafficEditor",
    "TrafficSliders",
    "create_form",
    "render_status",
    "status_panel",
    "traffic_editor",
]
