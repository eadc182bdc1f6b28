"""`CreateEndpointForm()`: create a serving endpoint from a form (what `%serve ui` shows).

- Pick registered models and versions from the backend's registry (`client.catalog.ModelCatalog`),
  read in the background; endpoint and entity names are pre-filled from the model.
- Several served entities (`entity_editor.EntityEditor`), with a traffic split kept at 100 %
  (`TrafficSliders`).
- Workload type per entity, with the GPU table of the workspace's cloud, a recommendation from the
  model's artifact size and warnings (`gpu_view`, over `jupyter_serving.core.gpu_fit`); workload size
  or provisioned concurrency, scale to zero with its cold-start caveat.
- An entity kind: Registered model, Agent, External model (`genai_fields.ExternalFields`: provider,
  task, model name, API base, the API key's secret scope and key) or Provisioned throughput (model units
  on each entity); and a collapsed AI Gateway section (`gateway_fields.GatewayFields`).
- Inline validation with the backend's own rules (`form_checks`, over `core.rules`), each error beside
  its field where it names one.
- "Create" sends the request from a thread and follows the deployment in an embedded
  `StatusPanel`; "Show code" gives the equivalent `%serve create` line and databricks-sdk code.
"""
from __future__ import annotations

import threading
from typing import Any

import ipywidgets as W
from traitlets import Enum, Int, List, Unicode, observe

from jupyter_serving.client.catalog import ModelCatalog
from jupyter_serving.core import rules
from jupyter_serving.widgets import codegen
from jupyter_serving.widgets._common import (
    BOX_STYLE,
    GREEN,
    GREY,
    RED,
    Background,
    esc,
    field_row,
    message_of,
    note,
    resolve_client,
)
from jupyter_serving.widgets.entity_editor import EntityEditor
from jupyter_serving.widgets.form_checks import endpoint_name_for, name_note_html, validate_form, validation_html
from jupyter_serving.widgets.gateway_fields import GatewayFields
from jupyter_serving.widgets.genai_fields import KINDS, ExternalFields, apply_kind
from jupyter_serving.widgets.gpu_view import gpu_table_html, gpu_table_title
from jupyter_serving.widgets.status_panel import StatusPanel
from jupyter_serving.widgets.traffic_editor import TrafficSliders

STATES = ("loading", "editing", "creating", "ready", "failed")
CODE_PRE = ('<pre style="background:#f6f8fa;border:1px solid #d0d7de;padding:8px;font-size:12px;'
            'white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;margin:4px 0;user-select:text">')


class CreateEndpointForm(W.VBox):
    """A form that creates a serving endpoint on the connected backend.

    Traits: `state` — "loading", "editing", "creating", "ready" or "failed"; `errors` — the
    validation messages (Create is disabled while there are any); `message` — the outcome;
    `pending` — background lookups in flight (0: idle).
    """

    state = Enum(STATES, "loading")
    message = Unicode("")
    errors = List(Unicode())
    pending = Int(0)

    def __init__(self, client: Any = None, *, catalog: Any = None, name: str | None = None,
                 model: str | None = None, version: str | int | None = None, cloud: str | None = None,
                 existing: list[str] | None = None, workload_type: str | None = None, kind: str = "model",
                 **kwargs):
        self.client = resolve_client(client)
        self.cloud = cloud or getattr(self.client, "cloud", None) or "aws"
        self.catalog = catalog if catalog is not None else ModelCatalog(self.client)
        self.bg = Background(self, "serving-form", self._background_error)
        self.models: list[str] = []
        self.existing: set[str] = set(existing or [])
        self._auto_endpoint = ""
        self._active: EntityEditor | None = None
        self._creating_thread: threading.Thread | None = None
        self._render_lock = threading.RLock()
        self._created_name = ""
        self._notice = ""  # what the registry said (no models, unreachable): shown above validation
        self.entities: list[EntityEditor] = []
        self.panel: StatusPanel | None = None

        self._build_controls(name)
        super().__init__([
            self.header,
            field_row("Serve", self.kind_picker, width="120px"),
            field_row("Endpoint name", self.name, self.name_note, width="120px"),
            self.entities_box,
            self.add_button,
            self.external,
            self.traffic_box,
            self.gpu_section,
            self.gateway_section,
            self.validation,
            W.HBox([self.create_button, self.code_button]),
            self.code,
            self.progress,
        ], layout=W.Layout(**BOX_STYLE, max_width="980px"), **kwargs)
        self.add_class("jupyter-serving-create")
        self.name.observe(lambda _: self._changed(None), names="value")
        self.add_button.on_click(lambda _: self.add_entity())
        self.create_button.on_click(lambda _: self.create())
        self.code_button.observe(self._toggle_code, names="value")
        self.traffic.observe(lambda _: self._changed(None), names="values")
        self.kind_picker.observe(self._kind_changed, names="value")
        self.add_entity(model, version, load=False)
        if workload_type:
            self.entities[0].request_workload_type(workload_type)
        self.kind_picker.value = kind
        self.bg.submit(self._load)

    def _build_controls(self, name: str | None) -> None:
        backend = getattr(self.client, "backend", "the connected backend")
        self.header = W.HTML(
            f'<div style="font-size:16px;font-weight:600;margin-bottom:2px">Create a serving endpoint</div>'
            f'<div style="color:{GREY};font-size:12px">on {esc(backend)} · cloud {esc(self.cloud.upper())} · '
            f"models from {esc(getattr(self.catalog, 'description', 'the model registry'))}</div>")
        self.name = W.Text(value=name or "", placeholder="my-endpoint", layout=W.Layout(width="300px"))
        self._explicit_name = bool(name)
        self.name_note = W.HTML(layout=W.Layout(flex="1 1 auto", width="auto"))
        self.kind_picker = W.ToggleButtons(options=KINDS, value="model", style={"button_width": "170px"},
                                           tooltips=("A model from the registry", "A ResponsesAgent or ChatAgent "
                                                     "model from the registry", "An OpenAI-compatible API",
                                                     "Model units: guaranteed tokens per second"))
        self.entities_box = W.VBox([W.HTML('<div style="font-weight:600;margin-top:6px">Served entities</div>')])
        self.external = ExternalFields(self)
        self.gateway = GatewayFields(lambda: self._changed(None))
        self.gateway_section = W.Accordion(children=[self.gateway], titles=("AI Gateway · off",),
                                           selected_index=None, layout=W.Layout(margin="6px 0"))
        self.add_button = W.Button(description="Add served entity", icon="plus", layout=W.Layout(width="180px"),
                                   tooltip="Serve another model or version behind the same endpoint")
        self.traffic = TrafficSliders([], [], label_width="200px")
        self.traffic_box = W.VBox([W.HTML('<div style="font-weight:600;margin-top:6px">Traffic split</div>'),
                                   self.traffic], layout=W.Layout(display="none"))
        self.gpu_table = W.HTML()
        # Collapsed until it matters: opened when a GPU type is chosen or the model needs one.
        self.gpu_section = W.Accordion(children=[self.gpu_table], titles=(gpu_table_title(self.cloud),),
                                       selected_index=None, layout=W.Layout(margin="6px 0"))
        self._gpu_opened_for: tuple | None = None
        self.validation = W.HTML()
        self.create_button = W.Button(description="Create", button_style="primary", icon="rocket",
                                      disabled=True, layout=W.Layout(width="140px"))
        self.code_button = W.ToggleButton(description="Show code", icon="code", value=False,
                                          layout=W.Layout(width="140px"),
                                          tooltip="The %serve create line and databricks-sdk code for this form")
        self.code = W.HTML(layout=W.Layout(display="none"))
        self.progress = W.VBox()

    # -- background ------------------------------------------------------------------------------------
    def _background_error(self, err: BaseException) -> None:
        self.message = message_of(err)
        self._notice = note(f"Reading the model registry failed: {self.message}", "error")
        for editor in self.entities:
            if editor.model.value is None:
                editor.model.options = [("(registry unavailable)", None)]
        if self.state == "loading":
            self.state = "editing"
        self._changed(None)

    def _load(self) -> None:
        try:
            self.existing |= set(self.client.names())
        except Exception:  # noqa: BLE001 - only used to warn about taken names
            pass
        self.models = self.catalog.models()
        if not self.models:
            self._notice = note(
                f"No registered models in {getattr(self.catalog, 'description', 'the registry')}: register one "
                "(mlflow.register_model) and rebuild the form.", "warning")
        for editor in self.entities:
            if editor.model.value is None:
                editor.set_models(self.models, *editor.preferred)
        self.state = "editing"
        self._changed(None)

    # -- entities -------------------------------------------------------------------------------------
    def add_entity(self, model: str | None = None, version: str | int | None = None, *,
                   load: bool = True) -> EntityEditor:
        """Add a served entity. Without a model: the previous entity's model, at the newest version no
        other entity serves (or the first model, newest version)."""
        if len(self.entities) >= rules.MAX_SERVED_ENTITIES:
            raise ValueError(f"at most {rules.MAX_SERVED_ENTITIES} served entities")
        if model is None and self.entities and self.entities[-1].model.value:
            model = self.entities[-1].model.value
        editor = EntityEditor(self, len(self.entities), model, version)
        editor.set_kind(self.kind)
        self.entities.append(editor)
        self.entities_box.children = (self.entities_box.children[0], *self.entities)
        self._active = editor
        self._sync_traffic()
        if load and self.models:
            editor.set_models(self.models, model, version)
        self._changed(editor)
        return editor

    def remove_entity(self, editor: EntityEditor) -> None:
        if len(self.entities) <= 1 or editor not in self.entities:
            return
        self.entities.remove(editor)
        for i, e in enumerate(self.entities):
            e.set_index(i)
        self.entities_box.children = (self.entities_box.children[0], *self.entities)
        if self._active is editor:
            self._active = self.entities[0]
        editor.close()
        self._sync_traffic()
        self._changed(None)

    def _sync_traffic(self) -> None:
        names = [e.entity_label for e in self.entities]
        self.traffic.set_names(names)
        self.traffic_box.layout.display = None if len(self.entities) > 1 and self.kind != "external" else "none"

    @property
    def kind(self) -> str:
        """What the form serves: "model", "agent", "external" or "pt" (provisioned throughput)."""
        return self.kind_picker.value

    def _kind_changed(self, change) -> None:
        apply_kind(self, change["new"])
        self._sync_traffic()
        self._changed(None)

    # -- config ---------------------------------------------------------------------------------------
    def entity_names(self) -> list[str]:
        if self.kind == "external":
            return [self.external.entity_label]
        return [e.entity_label for e in self.entities]

    def traffic_split(self) -> dict[str, int]:
        names = self.entity_names()
        if len(names) == 1:
            return {names[0]: 100}
        return dict(zip(names, self.traffic.values))

    def config(self) -> dict:
        """The core config (served_entities, traffic_config) the form describes."""
        if self.kind == "external":
            return {"served_entities": [self.external.entity()]}
        entities = []
        for e in self.entities:
            ent = e.entity()
            if "entity_name" in ent and "entity_version" in ent and "name" not in ent:
                ent["name"] = rules.default_entity_name(ent["entity_name"], ent["entity_version"])
            entities.append(ent)
        routes = [{"served_model_name": n, "traffic_percentage": p} for n, p in self.traffic_split().items()]
        return {"served_entities": entities, "traffic_config": {"routes": routes}}

    def validate(self) -> list[str]:
        """Validation messages, with the same rules the backend applies (empty: valid)."""
        return validate_form(self)

    def is_created(self, name: str) -> bool:
        """Is `name` the endpoint this form is creating or has created?"""
        return bool(name) and name == self._created_name and self.state in ("creating", "ready")

    def ai_gateway(self) -> dict | None:
        """The AI Gateway settings of the new endpoint (None: none)."""
        return self.gateway.settings()

    def magic_line(self) -> str:
        cfg = self.config()
        return codegen.magic_line(self.name.value.strip(), cfg["served_entities"], self.traffic_split(),
                                  ai_gateway=self.ai_gateway())

    def sdk_code(self) -> str:
        cfg = self.config()
        target = getattr(self.client, "target", None)
        local_kind = getattr(target, "kind", None) == "local"
        return codegen.sdk_code(self.name.value.strip(), cfg["served_entities"], self.traffic_split(),
                                local=bool(getattr(self.client, "is_local", False) and local_kind),
                                data_dir=getattr(target, "data_dir", None) if local_kind else None,
                                profile=getattr(target, "profile", None), ai_gateway=self.ai_gateway())

    # -- rendering ------------------------------------------------------------------------------------
    def _changed(self, editor: EntityEditor | None) -> None:
        # Runs on the kernel thread (user edits) and on the background thread (registry answers).
        with self._render_lock:
            self._changed_locked(editor)

    def _changed_locked(self, editor: EntityEditor | None) -> None:
        if editor is not None:
            self._active = editor
            editor.set_index(editor.index)
        names = self.entity_names()
        if names != self.traffic.names:
            self._sync_traffic()
        source = self.external.model_name.value.strip().replace(".", "-") if self.kind == "external" else (
            self.entities[0].model.value if self.entities else None)
        if not self._explicit_name and source:
            auto = endpoint_name_for(source, self.existing)
            if self.name.value.strip() in ("", self._auto_endpoint):
                self._auto_endpoint = auto
                if self.name.value != auto:
                    self.name.value = auto  # re-enters _changed once
                    return
        self.errors = self.validate()
        self.gateway_section.set_title(0, self.gateway.summary())
        self._render_validation()
        self._render_gpu_table()
        if self.code_button.value:
            self._render_code()
        busy = self.state in ("loading", "creating")
        done = self.is_created(self.name.value.strip())
        self.create_button.disabled = busy or done or bool(self.errors)
        self.add_button.disabled = busy or len(self.entities) >= rules.MAX_SERVED_ENTITIES or self.kind == "external"
        for e in self.entities:
            e.remove_button.disabled = busy or len(self.entities) == 1

    def entity_changed(self, editor: EntityEditor) -> None:
        """What an entity editor calls when it changed: re-validate and re-render, with it active."""
        self._changed(editor)

    def _render_validation(self) -> None:
        self.name_note.value = name_note_html(self)
        self.validation.value = self._notice + validation_html(self)

    def _render_gpu_table(self) -> None:
        editor = self._active if self._active in self.entities else (self.entities[0] if self.entities else None)
        if editor is None:
            self.gpu_table.value = gpu_table_html(self.cloud, None)
            return
        info, rec = editor.info, editor.recommendation()
        self.gpu_table.value = gpu_table_html(self.cloud, info.size_bytes if info is not None else None,
                                              who=editor.entity_label, chosen=editor.workload_type.value,
                                              recommended=rec.workload_type if rec is not None else None)
        self._open_gpu_table(editor, rec)

    def _open_gpu_table(self, editor: EntityEditor, rec) -> None:
        """Open the table once when it matters for `editor` (a GPU type chosen, or the model needs a
        GPU or fits none); the user may close it again."""
        from jupyter_serving.core.workloads import find_workload_type

        chosen = find_workload_type(self.cloud, editor.workload_type.value or "CPU")
        needs_gpu = rec is not None and rec.workload_type != "CPU"
        reason = (editor.index, editor.workload_type.value) if chosen is not None and chosen.is_gpu else (
            (editor.index, "needs-gpu") if needs_gpu else None)
        if reason is not None and reason != self._gpu_opened_for:
            self.gpu_section.selected_index = 0
        self._gpu_opened_for = reason

    def _toggle_code(self, change) -> None:
        self.code_button.description = "Hide code" if change["new"] else "Show code"
        self.code.layout.display = None if change["new"] else "none"
        if change["new"]:
            self._render_code()

    def _render_code(self) -> None:
        if self.kind != "external" and any(e.model.value is None or e.version.value is None for e in self.entities):
            self.code.value = note("Choose a model and version for every served entity first.", "info")
            return
        self.code.value = (f'<div style="font-size:12px;color:{GREY}">Re-create this endpoint without the form — '
                           "with the magic:</div>" + CODE_PRE + esc(self.magic_line()) + "</pre>"
                           + f'<div style="font-size:12px;color:{GREY}">or with databricks-sdk:</div>'
                           + CODE_PRE + esc(self.sdk_code()) + "</pre>")

    @observe("state")
    def _state_changed(self, change) -> None:
        """The inputs are locked while a create request runs."""
        if "creating" in (change["old"], change["new"]):
            self._set_inputs_disabled(change["new"] == "creating")

    def _set_inputs_disabled(self, disabled: bool) -> None:
        self.name.disabled = disabled
        self.kind_picker.disabled = disabled
        self.external.set_disabled(disabled)
        self.gateway.set_disabled(disabled)
        for e in self.entities:
            e.set_disabled(disabled)
        self.add_button.disabled = disabled
        for s in self.traffic.sliders:
            s.disabled = disabled

    # -- create -----------------------------------------------------------------------------------------
    def create(self) -> None:
        """Send the create request from a background thread and follow the deployment below the form."""
        if self.state in ("loading", "creating"):
            return
        self.errors = self.validate()
        if self.errors:
            self._render_validation()
            return
        name = self.name.value.strip()
        config, gateway = self.config(), self.ai_gateway()
        self._created_name = name
        self.create_button.disabled = True
        self.state = "creating"
        self.message = ""
        if self.panel is not None:
            self.panel.close()
        self.panel = StatusPanel(name, self.client, start=False, title=f"Creating endpoint {name}")
        self.panel.body.value = note(f"Sending the create request for {name}…", "info")
        self.panel.observe(self._panel_polling, names="polling")
        self.progress.children = (self.panel,)
        self._creating_thread = threading.Thread(target=self._create, args=(name, config, gateway), daemon=True,
                                                 name=f"serving-create-{name}")
        self._creating_thread.start()

    def _create(self, name: str, config: dict, gateway: dict | None = None) -> None:
        try:  # provisioned throughput goes through create_provisioned_throughput_endpoint (the client's choice)
            self.client.create(name, config=config, ai_gateway=gateway, wait=False)
        except Exception as err:  # noqa: BLE001 - shown in the form
            self._finish("failed", f"Create failed: {message_of(err)}")
            if self.panel is not None:
                self.panel.body.value = note(self.message, "error")
            return
        self.existing.add(name)
        self._explicit_name = True  # keep the name on screen: it now names this endpoint
        self.panel.start()

    def _panel_polling(self, change) -> None:
        if change["new"] or self.state != "creating":
            return
        status = self.panel.status if self.panel is not None else None
        name = self.name.value.strip()
        if status is not None and status.is_ready and not status.update_failed:
            self._finish("ready", f"Endpoint '{name}' is Ready (config v{status.config_version}).")
        elif status is not None and status.update_failed:
            self._finish("failed", f"Endpoint '{name}' failed to deploy: {status.failure_reason().rstrip('.')}.")
        else:
            state = status.state if status is not None else "unknown"
            self._finish("failed" if status is None or not status.is_updating else "editing",
                         f"Stopped following '{name}' ({state}); see %serve status {name} --watch.")

    def _finish(self, state: str, message: str) -> None:
        self.message = message
        self.state = state
        self._changed(None)
        if self.panel is not None:
            self.panel.title.value = (f'<div style="font-size:14px;font-weight:600;color:'
                                      f'{GREEN if state == "ready" else RED}">{esc(message)}</div>')

    def close(self) -> None:
        if self.panel is not None:
            self.panel.close()
        self.bg.shutdown()
        super().close()


def create_form(client: Any = None, **kwargs) -> CreateEndpointForm:
    """What `%serve ui` displays: a CreateEndpointForm on `client` (the default client if None)."""
    return CreateEndpointForm(client, **kwargs)
