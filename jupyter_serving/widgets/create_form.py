"""`CreateEndpointForm()`: create a serving endpoint from a form (what `%serve ui` shows).

- Pick registered models and versions from the backend's registry (`catalog.ModelCatalog`), read
  in the background; endpoint and entity names are pre-filled from the model.
- Several served entities, with a traffic split kept at 100 % (`TrafficSliders`).
- Workload type per entity, with the GPU table of the workspace's cloud, a recommendation from the
  model's artifact size and warnings (`jupyter_serving.gpu_fit`); workload size or provisioned
  concurrency, scale to zero with its cold-start caveat.
- Inline validation with the backend's own rules (`rules.validate_endpoint_name`,
  `rules.normalize_config`).
- "Create" sends the request from a thread and follows the deployment in an embedded
  `StatusPanel`; "Show code" gives the equivalent `%serve create` line and databricks-sdk code.
"""
from __future__ import annotations

import re
import threading
from typing import Any

import ipywidgets as W
from traitlets import Int, List, Unicode

from .. import gpu_fit, rules
from ..workloads import CONCURRENCY_STEP, WORKLOAD_SIZES, find_workload_type, workload_types
from . import codegen
from ._common import (
    BLUE, BOX_STYLE, GREEN, GREY, RED, Background, esc, field_row, message_of, note, resolve_client, table,
)
from .catalog import ModelCatalog, ModelInfo
from .status_panel import StatusPanel
from .traffic_editor import TrafficSliders

_LOADING = "Loading…"


def _workload_label(wt) -> str:
    if not wt.is_gpu:
        return f"{wt.name} · no GPU"
    return f"{wt.name} · {wt.gpu_count}× {wt.gpu} · {wt.gpu_memory_gb} GB"


def _size_label(size: str) -> str:
    low, high = WORKLOAD_SIZES[size]
    return f"{size} · {low} concurrent" if low == high else f"{size} · {low}–{high} concurrent"


def endpoint_name_for(model: str, taken: set[str] | frozenset = frozenset()) -> str:
    """A valid, free endpoint name from a model name: 'main.ml.iris' -> 'iris' (then 'iris-2', ...)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", str(model).split(".")[-1].split("/")[-1]).strip("-_") or "endpoint"
    if base.lower().startswith(rules.RESERVED_PREFIX):
        base = "my-" + base
    base = base[: rules.MAX_NAME_LENGTH - 4]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


class EntityEditor(W.VBox):
    """One served entity of the form: model, version, name, compute and scaling."""

    def __init__(self, form: "CreateEndpointForm", index: int):
        self.form = form
        self.info: ModelInfo | None = None
        self._auto_name = ""
        self._preferred: tuple[str | None, str | None] = (None, None)  # (model, version) to select
        self.unavailable = ""  # a requested workload type this cloud does not offer (why it was not set)
        self._kept_type = ""
        cloud = form.cloud
        self.title = W.HTML()
        self.remove_button = W.Button(description="Remove", icon="trash", layout=W.Layout(width="100px"),
                                      tooltip="Remove this served entity")
        self.model = W.Dropdown(options=[(_LOADING, None)], value=None, layout=W.Layout(width="300px"))
        self.version = W.Dropdown(options=[], layout=W.Layout(width="90px"))
        self.entity_name = W.Text(placeholder="model-version", layout=W.Layout(width="200px"))
        self.workload_type = W.Dropdown(options=[(_workload_label(wt), wt.name) for wt in workload_types(cloud)],
                                        value="CPU", layout=W.Layout(width="300px"))
        self.use_recommended = W.Button(description="Use recommended", icon="star", disabled=True,
                                        layout=W.Layout(width="170px"))
        self.sizing = W.ToggleButtons(options=[("Workload size", "size"), ("Provisioned concurrency", "concurrency")],
                                      value="size", style={"button_width": "200px"})
        self.size = W.Dropdown(options=[(_size_label(s), s) for s in WORKLOAD_SIZES], value="Small",
                               layout=W.Layout(width="220px"))
        self.min_concurrency = W.BoundedIntText(value=4, min=0, max=100000, step=CONCURRENCY_STEP,
                                                description="min", layout=W.Layout(width="140px"),
                                                style={"description_width": "30px"})
        self.max_concurrency = W.BoundedIntText(value=8, min=0, max=100000, step=CONCURRENCY_STEP,
                                                description="max", layout=W.Layout(width="140px"),
                                                style={"description_width": "30px"})
        self.concurrency_box = W.HBox([self.min_concurrency, self.max_concurrency,
                                       W.HTML(f'<span style="color:{GREY};font-size:12px">multiples of '
                                              f'{CONCURRENCY_STEP}</span>')],
                                      layout=W.Layout(display="none", align_items="center"))
        self.scale_to_zero = W.Checkbox(value=False, description="Scale to zero when idle", indent=False,
                                        layout=W.Layout(width="220px"))
        self.advice = W.HTML()
        head = W.HBox([self.title, self.remove_button],
                      layout=W.Layout(justify_content="space-between", align_items="center"))
        super().__init__([
            head,
            field_row("Model", self.model, W.HTML("&nbsp;version"), self.version),
            field_row("Entity name", self.entity_name),
            field_row("Compute", self.workload_type, self.use_recommended),
            field_row("Scaling", self.sizing),
            field_row("", self.size, self.concurrency_box),
            field_row("", self.scale_to_zero),
            self.advice,
        ], layout=W.Layout(border="1px solid #d0d7de", padding="6px 10px", margin="4px 0"))
        self.add_class("jupyter-serving-entity")
        self.model.observe(self._model_changed, names="value")
        self.version.observe(self._version_changed, names="value")
        self.entity_name.observe(lambda _: self.form._changed(self), names="value")
        for w in (self.workload_type, self.size, self.min_concurrency, self.max_concurrency, self.scale_to_zero):
            w.observe(lambda _: self._compute_changed(), names="value")
        self.sizing.observe(self._sizing_changed, names="value")
        self.use_recommended.on_click(lambda _: self._apply_recommendation())
        self.remove_button.on_click(lambda _: self.form.remove_entity(self))
        self.set_index(index)

    # -- reading ------------------------------------------------------------------------------------
    @property
    def entity_label(self) -> str:
        return self.entity_name.value.strip() or self._default_name() or "(no model)"

    def _default_name(self) -> str:
        if not self.model.value or not self.version.value:
            return ""
        return rules.default_entity_name(self.model.value, self.version.value)

    def entity(self) -> dict:
        """The `served_entities[]` item this editor describes."""
        e: dict[str, Any] = {}
        if self.model.value:
            e["entity_name"] = self.model.value
        if self.version.value:
            e["entity_version"] = str(self.version.value)
        name = self.entity_name.value.strip()
        if name:
            e["name"] = name
        e["workload_type"] = self.workload_type.value
        if self.sizing.value == "size":
            e["workload_size"] = self.size.value
        else:
            e["min_provisioned_concurrency"] = int(self.min_concurrency.value)
            e["max_provisioned_concurrency"] = int(self.max_concurrency.value)
        e["scale_to_zero_enabled"] = bool(self.scale_to_zero.value)
        return e

    def set_index(self, index: int) -> None:
        self.index = index
        self.title.value = (f'<span style="font-weight:600;font-size:14px">Served entity {index + 1}</span>'
                            f'<span style="color:{GREY}"> · {esc(self.entity_label)}</span>')

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.model, self.version, self.entity_name, self.workload_type, self.sizing, self.size,
                  self.min_concurrency, self.max_concurrency, self.scale_to_zero, self.remove_button):
            w.disabled = disabled
        self.use_recommended.disabled = disabled or not self._recommendation_differs()

    # -- models -------------------------------------------------------------------------------------
    def set_models(self, models: list[str], preferred: str | None = None,
                   version: str | int | None = None) -> None:
        self._preferred = (preferred, str(version) if version not in (None, "") else None)
        if not models:
            self.model.options = [("No registered models", None)]
            self.model.value = None
            return
        current = self.model.value
        self.model.options = list(models)
        choice = preferred if preferred in models else (current if current in models else models[0])
        if self.model.value != choice:
            self.model.value = choice
        else:
            self._model_changed({"new": choice})

    def _model_changed(self, change) -> None:
        model = change["new"]
        self.info = None
        self.version.options = []
        self.form._changed(self)
        if model:
            self.form.bg.submit(self._load_versions, model)

    def _load_versions(self, model: str) -> None:
        versions = self.form.catalog.versions(model)
        if self.model.value != model:  # the user moved on
            return
        preferred = self._preferred[1] if model == self._preferred[0] else None
        if preferred not in versions:
            # a second entity of the same model is usually another version (A/B, canary): the
            # newest one no other entity serves yet
            used = {e.version.value for e in self.form.entities if e is not self and e.model.value == model}
            preferred = next((v for v in versions if v not in used), versions[0] if versions else None)
        self.version.options = versions
        if versions:
            value = preferred
            if self.version.value != value:
                self.version.value = value
            else:
                self._version_changed({"new": value})
        else:
            self.form._changed(self)

    def _version_changed(self, change) -> None:
        version = change["new"]
        self.info = None
        default = self._default_name()
        if self.entity_name.value.strip() in ("", self._auto_name):
            self._auto_name = default
            self.entity_name.value = default
        else:
            self._auto_name = default
        self.form._changed(self)
        if self.model.value and version:
            self.form.bg.submit(self._load_info, self.model.value, version)

    def _load_info(self, model: str, version: str) -> None:
        info = self.form.catalog.info(model, version)
        if (self.model.value, self.version.value) != (model, version):
            return
        self.info = info
        self._render_advice()
        self.form._changed(self)

    # -- compute ------------------------------------------------------------------------------------
    def _sizing_changed(self, change) -> None:
        concurrency = change["new"] == "concurrency"
        self.size.layout.display = "none" if concurrency else None
        self.concurrency_box.layout.display = None if concurrency else "none"
        self._compute_changed()

    def request_workload_type(self, name: str) -> bool:
        """Select workload type `name` if this cloud offers it; otherwise keep the current one and say
        why (with the types that exist here). Returns whether it was selected."""
        if find_workload_type(self.form.cloud, name) is not None:
            self.unavailable = ""
            self.workload_type.value = name
            return True
        info = self.info
        advice = gpu_fit.check(self.form.cloud, name, info.size_bytes if info else None,
                               info.flavors if info else ())
        self.unavailable = advice[0].text if advice else f"{name} is not offered on {self.form.cloud.upper()}."
        self._kept_type = self.workload_type.value
        self._compute_changed()
        return False

    def _compute_changed(self) -> None:
        if self.unavailable and self.workload_type.value != self._kept_type:
            self.unavailable = ""  # the user chose a type
        self._render_advice()
        self.form._changed(self)

    def recommendation(self) -> gpu_fit.Recommendation | None:
        if self.info is None:
            return None
        return gpu_fit.recommend(self.form.cloud, self.info.size_bytes, self.info.flavors)

    def _recommendation_differs(self) -> bool:
        rec = self.recommendation()
        return bool(rec and rec.workload_type and rec.workload_type != self.workload_type.value)

    def _apply_recommendation(self) -> None:
        rec = self.recommendation()
        if rec and rec.workload_type:
            self.workload_type.value = rec.workload_type

    def advice_items(self) -> list[gpu_fit.Advice]:
        """What gpu_fit says about the chosen type (empty until the artifact facts are read)."""
        if self.info is None:
            return []
        return gpu_fit.check(self.form.cloud, self.workload_type.value, self.info.size_bytes, self.info.flavors)

    def _render_advice(self) -> None:
        parts = []
        info = self.info
        if not self.model.value or not self.version.value:
            parts.append(f'<span style="color:{GREY}">Choose a model and a version.</span>')
        elif info is None:
            parts.append(f'<span style="color:{GREY}">Reading the model artifacts…</span>')
        else:
            flavors = ", ".join(f for f in info.flavors if f != "python_function") or "pyfunc"
            facts = (f"Model artifacts: <b>{esc(gpu_fit.format_bytes(info.size_bytes))}</b> · flavor {esc(flavors)}"
                     if info.size_bytes is not None else
                     f"Model artifacts: size unknown ({esc(info.error or 'not readable')})")
            needed = gpu_fit.needed_gpu_memory_gb(info.size_bytes)
            rec = self.recommendation()
            chosen = find_workload_type(self.form.cloud, self.workload_type.value)
            on_gpu = (chosen is not None and chosen.is_gpu) or bool(rec and rec.workload_type != "CPU")
            if needed is not None and on_gpu:
                facts += f" · needs ≈ {needed:.1f} GB of GPU memory"
            parts.append(f'<div style="font-size:13px">{facts}</div>')
            if rec is not None:
                what = f"<b>{esc(rec.workload_type)}</b>" if rec.workload_type else "<b>nothing on this cloud</b>"
                parts.append(f'<div style="font-size:13px;color:{BLUE}">★ Recommended: {what} — {esc(rec.reason)}.'
                             "</div>")
            for item in self.advice_items():
                parts.append(note(item.text, item.level))
        if self.unavailable:
            parts.append(note(self.unavailable, "error"))
        wt = find_workload_type(self.form.cloud, self.workload_type.value)
        e = self.entity()
        try:
            low, high = rules.entity_concurrency(e)
        except (TypeError, ValueError, KeyError):
            low = high = None
        if low is not None and high is not None:
            conc = f"{low}" if low == high else f"{low}–{high}"
            text = f"Concurrency {conc} requests"
            if wt is not None and wt.is_gpu:
                text += f" · up to {gpu_fit.replicas(high)} GPU replica(s) of {wt.gpu_count}× {wt.gpu} (concurrency ÷ 4)"
            parts.append(f'<div style="font-size:12px;color:{GREY}">{esc(text)}</div>')
        if self.scale_to_zero.value:
            parts.append(note(gpu_fit.SCALE_TO_ZERO_CAVEAT, "warning"))
        self.advice.value = "".join(parts)
        self.use_recommended.disabled = self.model.disabled or not self._recommendation_differs()


class CreateEndpointForm(W.VBox):
    """A form that creates a serving endpoint on the connected backend.

    Traits: `state` — "loading", "editing", "creating", "ready" or "failed"; `errors` — the
    validation messages (Create is disabled while there are any); `message` — the outcome;
    `pending` — background lookups in flight (0: idle).
    """

    state = Unicode("loading")
    message = Unicode("")
    errors = List(Unicode())
    pending = Int(0)

    def __init__(self, client: Any = None, *, catalog: Any = None, name: str | None = None,
                 model: str | None = None, version: str | int | None = None, cloud: str | None = None,
                 existing: list[str] | None = None, workload_type: str | None = None, **kwargs):
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

        backend = getattr(self.client, "backend", "the connected backend")
        self.header = W.HTML(
            f'<div style="font-size:16px;font-weight:600;margin-bottom:2px">Create a serving endpoint</div>'
            f'<div style="color:{GREY};font-size:12px">on {esc(backend)} · cloud {esc(self.cloud.upper())} · '
            f"models from {esc(getattr(self.catalog, 'description', 'the model registry'))}</div>")
        self.name = W.Text(value=name or "", placeholder="my-endpoint", layout=W.Layout(width="300px"))
        self._explicit_name = bool(name)
        self.name_note = W.HTML()
        self.entities_box = W.VBox()
        self.add_button = W.Button(description="Add served entity", icon="plus", layout=W.Layout(width="180px"),
                                   tooltip="Serve another model or version behind the same endpoint")
        self.traffic = TrafficSliders([], [], label_width="200px")
        self.traffic_box = W.VBox([W.HTML('<div style="font-weight:600;margin-top:6px">Traffic split</div>'),
                                   self.traffic], layout=W.Layout(display="none"))
        self.gpu_table = W.HTML()
        self.validation = W.HTML()
        self.create_button = W.Button(description="Create", button_style="primary", icon="rocket",
                                      disabled=True, layout=W.Layout(width="140px"))
        self.code_button = W.ToggleButton(description="Show code", icon="code", value=False,
                                          layout=W.Layout(width="140px"),
                                          tooltip="The %serve create line and databricks-sdk code for this form")
        self.code = W.HTML(layout=W.Layout(display="none"))
        self.progress = W.VBox()
        super().__init__([
            self.header,
            field_row("Endpoint name", self.name, self.name_note, width="120px"),
            W.HTML('<div style="font-weight:600;margin-top:6px">Served entities</div>'),
            self.entities_box,
            self.add_button,
            self.traffic_box,
            self.gpu_table,
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
        self.traffic.on_change(lambda _: self._changed(None))
        self.add_entity(model, version, load=False)
        if workload_type:
            self.entities[0].request_workload_type(workload_type)
        self.bg.submit(self._load)

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
                editor.set_models(self.models, *editor._preferred)
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
        editor = EntityEditor(self, len(self.entities))
        editor._preferred = (model, str(version) if version not in (None, "") else None)
        self.entities.append(editor)
        self.entities_box.children = tuple(self.entities)
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
        self.entities_box.children = tuple(self.entities)
        if self._active is editor:
            self._active = self.entities[0]
        editor.close()
        self._sync_traffic()
        self._changed(None)

    def _sync_traffic(self) -> None:
        names = [e.entity_label for e in self.entities]
        self.traffic.set_names(names)
        self.traffic_box.layout.display = None if len(self.entities) > 1 else "none"

    # -- config ---------------------------------------------------------------------------------------
    def entity_names(self) -> list[str]:
        return [e.entity_label for e in self.entities]

    def traffic_split(self) -> dict[str, int]:
        names = self.entity_names()
        if len(names) == 1:
            return {names[0]: 100}
        return dict(zip(names, self.traffic.values))

    def config(self) -> dict:
        """The core config (served_entities, traffic_config) the form describes."""
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
        errors: list[str] = []
        name = self.name.value.strip()
        try:
            rules.validate_endpoint_name(name)
        except rules.RuleViolation as err:
            errors.append(err.message)
        else:
            if name in self.existing and not self._is_created(name):
                errors.append(f"An endpoint named '{name}' already exists: choose another name "
                              f"(or change it with %serve update {name} ...).")
        for e in self.entities:
            if e.unavailable:
                errors.append(f"Served entity #{e.index + 1}: {e.unavailable} Pick a workload type offered here.")
        missing = [e.index + 1 for e in self.entities if not (e.model.value and e.version.value)]
        if missing:
            errors.append("Served entity " + ", ".join(f"#{i}" for i in missing) + ": choose a model and a version.")
        else:
            try:
                rules.normalize_config(self.config(), self.cloud)
            except rules.RuleViolation as err:
                errors.append(err.message)
        return errors

    def _is_created(self, name: str) -> bool:
        """Is `name` the endpoint this form is creating or has created?"""
        return bool(name) and name == self._created_name and self.state in ("creating", "ready")

    def magic_line(self) -> str:
        cfg = self.config()
        return codegen.magic_line(self.name.value.strip(), cfg["served_entities"], self.traffic_split())

    def sdk_code(self) -> str:
        cfg = self.config()
        target = getattr(self.client, "target", None)
        local_kind = getattr(target, "kind", None) == "local"
        return codegen.sdk_code(self.name.value.strip(), cfg["served_entities"], self.traffic_split(),
                                local=bool(getattr(self.client, "is_local", False) and local_kind),
                                data_dir=getattr(target, "data_dir", None) if local_kind else None,
                                profile=getattr(target, "profile", None))

    def code_text(self) -> str:
        return (f"# the same with the magic\n{self.magic_line()}\n\n"
                f"# the same with databricks-sdk\n{self.sdk_code()}\n")

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
        if not self._explicit_name and self.entities and self.entities[0].model.value:
            auto = endpoint_name_for(self.entities[0].model.value, self.existing)
            if self.name.value.strip() in ("", self._auto_endpoint):
                self._auto_endpoint = auto
                if self.name.value != auto:
                    self.name.value = auto  # re-enters _changed once
                    return
        self.errors = self.validate()
        self._render_validation()
        self._render_gpu_table()
        if self.code_button.value:
            self._render_code()
        busy = self.state in ("loading", "creating")
        done = self._is_created(self.name.value.strip())
        self.create_button.disabled = busy or done or bool(self.errors)
        self.add_button.disabled = busy or len(self.entities) >= rules.MAX_SERVED_ENTITIES
        for e in self.entities:
            e.remove_button.disabled = busy or len(self.entities) == 1

    def _render_validation(self) -> None:
        self._render_validation_messages()
        if self._notice:
            self.validation.value = self._notice + self.validation.value

    def _render_validation_messages(self) -> None:
        name = self.name.value.strip()
        if self._is_created(name):
            self.name_note.value = ""
        elif name and name in self.existing:
            self.name_note.value = f'<span style="color:{RED};font-size:12px">&nbsp;name taken</span>'
        elif name and not any("Endpoint name" in e for e in self.errors):
            self.name_note.value = f'<span style="color:{GREEN};font-size:12px">&nbsp;✔ available</span>'
        else:
            self.name_note.value = ""
        if self.state == "loading":
            self.validation.value = note("Reading the model registry…", "info")
            return
        if self.errors:
            self.validation.value = "".join(note(e, "error") for e in self.errors)
            return
        if self.state == "ready" and self._is_created(name):
            self.validation.value = note(f"Created '{name}'. Change the name to create another endpoint.", "ok")
            return
        warnings = [a for e in self.entities for a in e.advice_items() if a.level in ("error", "warning")]
        split = ", ".join(f"{k} {v}%" for k, v in self.traffic_split().items())
        ok = note(f"Valid: {len(self.entities)} served entit{'y' if len(self.entities) == 1 else 'ies'} "
                  f"({split}). Create sends it to {getattr(self.client, 'backend', 'the backend')}.", "ok")
        extra = "".join(note(f"{e.entity_label}: {a.text}", a.level) for e in self.entities
                        for a in e.advice_items() if a.level in ("error", "warning"))
        self.validation.value = ok + (extra if warnings else "")

    def _render_gpu_table(self) -> None:
        editor = self._active if self._active in self.entities else (self.entities[0] if self.entities else None)
        info = editor.info if editor is not None else None
        size = info.size_bytes if info is not None else None
        chosen = editor.workload_type.value if editor is not None else None
        rec = editor.recommendation() if editor is not None else None
        rows, styles = [], []
        for fit in gpu_fit.fit_table(self.cloud, size):
            wt = fit.workload
            if fit.fits is None:
                verdict = f'<span style="color:{GREY}">CPU only</span>' if not wt.is_gpu else \
                    f'<span style="color:{GREY}">?</span>'
            elif fit.fits:
                verdict = f'<span style="color:{GREEN};font-weight:600">✔ fits</span>'
            else:
                verdict = (f'<span style="color:{RED};font-weight:600">✖ too small</span>')
            name = esc(wt.name)
            if rec is not None and rec.workload_type == wt.name:
                name += f' <span style="color:{BLUE}" title="recommended">★</span>'
            rows.append([
                f"<code>{name}</code>" if wt.name != chosen else f"<b><code>{name}</code></b> ◀ chosen",
                esc(wt.gpu or "–"),
                str(wt.gpu_count) if wt.is_gpu else "–",
                f"{wt.gpu_memory_gb} GB" if wt.is_gpu else "–",
                f"{fit.usable_gb:.1f} GB" if wt.is_gpu else "–",
                verdict,
            ])
            styles.append("background:#ddf4ff" if wt.name == chosen else "")
        who = esc(editor.entity_label) if editor is not None else ""
        if size is not None:
            needed = gpu_fit.needed_gpu_memory_gb(size)
            need = "< 0.1 GB" if needed < 0.1 else f"≈ {needed:.1f} GB"
            sub = (f"for <b>{who}</b>: artifacts {esc(gpu_fit.format_bytes(size))} → needs {need} "
                   f"(× {gpu_fit.OVERHEAD_FACTOR}); usable = GPU memory − {gpu_fit.HEADROOM:.0%} headroom")
        else:
            sub = f"for <b>{who}</b>: artifact size not known yet"
        self.gpu_table.value = (
            f'<div style="font-weight:600;margin-top:8px">Workload types on {esc(self.cloud.upper())}</div>'
            f'<div style="color:{GREY};font-size:12px">{sub}</div>'
            + table(["Workload type", "GPU", "GPUs", "GPU memory", "Usable", "Fits the model?"], rows, styles))

    def _toggle_code(self, change) -> None:
        self.code_button.description = "Hide code" if change["new"] else "Show code"
        self.code.layout.display = None if change["new"] else "none"
        if change["new"]:
            self._render_code()

    def _render_code(self) -> None:
        pre = ('<pre style="background:#f6f8fa;border:1px solid #d0d7de;padding:8px;font-size:12px;'
               'white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;margin:4px 0;user-select:text">')
        if any(e.model.value is None or e.version.value is None for e in self.entities):
            self.code.value = note("Choose a model and version for every served entity first.", "info")
            return
        self.code.value = (f'<div style="font-size:12px;color:{GREY}">Re-create this endpoint without the form — '
                           "with the magic:</div>" + pre + esc(self.magic_line()) + "</pre>"
                           + f'<div style="font-size:12px;color:{GREY}">or with databricks-sdk:</div>'
                           + pre + esc(self.sdk_code()) + "</pre>")

    def _set_inputs_disabled(self, disabled: bool) -> None:
        self.name.disabled = disabled
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
        config = self.config()
        self._created_name = name
        self.state = "creating"
        self.message = ""
        self.create_button.disabled = True
        self._set_inputs_disabled(True)
        if self.panel is not None:
            self.panel.close()
        self.panel = StatusPanel(name, self.client, start=False, title=f"Creating endpoint {name}")
        self.panel.body.value = note(f"Sending the create request for {name}…", "info")
        self.panel.observe(self._panel_polling, names="polling")
        self.progress.children = (self.panel,)
        self._creating_thread = threading.Thread(target=self._create, args=(name, config), daemon=True,
                                                 name=f"serving-create-{name}")
        self._creating_thread.start()

    def _create(self, name: str, config: dict) -> None:
        try:
            self.client.create(name, config=config, wait=False)
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
            self._finish("ready", f"Endpoint '{name}' is READY (config v{status.config_version}).")
        elif status is not None and status.update_failed:
            self._finish("failed", f"Endpoint '{name}' failed to deploy: {status.failure_reason().rstrip('.')}.")
        else:
            state = status.state if status is not None else "unknown"
            self._finish("failed" if status is None or not status.is_updating else "editing",
                         f"Stopped following '{name}' ({state}); see %serve status {name} --watch.")

    def _finish(self, state: str, message: str) -> None:
        self.message = message
        self.state = state
        self._set_inputs_disabled(False)
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
