"""`EntityEditor`: one served entity of the create form — model, version, name, compute and scaling.

Versions and artifact facts are read through the form's catalog on the form's background thread;
every change is reported to the form (`CreateEndpointForm.entity_changed`), which validates and
re-renders. The served-entity dict comes from `core.rules.served_entity`, the advice from
`gpu_view.advice_html`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W
from traitlets import Unicode, observe

from jupyter_serving.client.catalog import ModelInfo
from jupyter_serving.core import genai, gpu_fit, rules
from jupyter_serving.core.workloads import CONCURRENCY_STEP, WORKLOAD_SIZES, find_workload_type, workload_types
from jupyter_serving.widgets._common import GREY, esc, field_row, note
from jupyter_serving.widgets.genai_fields import field_error
from jupyter_serving.widgets.gpu_view import advice_html

if TYPE_CHECKING:
    from jupyter_serving.widgets.create_form import CreateEndpointForm

LOADING = "Loading…"


def _workload_label(wt) -> str:
    if not wt.is_gpu:
        return f"{wt.name} · no GPU"
    return f"{wt.name} · {wt.gpu_count}× {wt.gpu} · {wt.gpu_memory_gb} GB"


def _size_label(size: str) -> str:
    low, high = WORKLOAD_SIZES[size]
    return f"{size} · {low} concurrent" if low == high else f"{size} · {low}–{high} concurrent"


def units_html(units: int, burst_scaling: bool) -> str:
    """What `units` model units mean locally ('' while they are invalid: the form shows the rule's error)."""
    text = genai.pt_throughput_text(int(units), bool(burst_scaling))
    return f'<span style="color:{GREY};font-size:12px">&nbsp;= {esc(text.split(": ", 1)[-1])}</span>' if text else ""


def _version_or_none(version: str | int | None) -> str | None:
    return str(version) if version not in (None, "") else None


def _concurrency_input(value: int, description: str) -> W.BoundedIntText:
    return W.BoundedIntText(value=value, min=0, max=100000, step=CONCURRENCY_STEP, description=description,
                            layout=W.Layout(width="140px"), style={"description_width": "30px"})


class EntityEditor(W.VBox):
    """One served entity of the form: model, version, name, compute and scaling.

    `preferred` is the (model, version) to select once the registry answers; `unavailable` says why a
    requested workload type was not set (this cloud does not offer it; '' otherwise)."""

    unavailable = Unicode("")

    def __init__(self, form: CreateEndpointForm, index: int, model: str | None = None,
                 version: str | int | None = None):
        self.form = form
        self.info: ModelInfo | None = None
        self._auto_name = ""
        self.preferred: tuple[str | None, str | None] = (model, _version_or_none(version))
        self._kept_type = ""
        self.kind = "model"  # the form's entity kind: model, agent or pt (provisioned throughput)
        self.title = W.HTML()
        self._build_controls(form.cloud)
        head = W.HBox([self.title, self.remove_button],
                      layout=W.Layout(justify_content="space-between", align_items="center"))
        self.compute_rows = [field_row("Compute", self.workload_type, self.use_recommended),
                             field_row("Scaling", self.sizing), field_row("", self.size, self.concurrency_box),
                             field_row("", self.scale_to_zero)]
        self.pt_row = field_row("Model units", self.units, self.burst_scaling, self.units_note)
        self.pt_row.layout.display = "none"
        super().__init__([
            head,
            field_row("Model", self.model, W.HTML("&nbsp;version"), self.version),
            field_row("Entity name", self.entity_name),
            *self.compute_rows,
            self.pt_row,
            self.advice,
        ], layout=W.Layout(border="1px solid #d0d7de", padding="6px 10px", margin="4px 0"))
        self.add_class("jupyter-serving-entity")
        self._connect()
        self.set_index(index)

    def _build_controls(self, cloud: str) -> None:
        self.remove_button = W.Button(description="Remove", icon="trash", layout=W.Layout(width="100px"),
                                      tooltip="Remove this served entity")
        self.model = W.Dropdown(options=[(LOADING, None)], value=None, layout=W.Layout(width="300px"))
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
        self.min_concurrency = _concurrency_input(4, "min")
        self.max_concurrency = _concurrency_input(8, "max")
        self.concurrency_box = W.HBox([self.min_concurrency, self.max_concurrency,
                                       W.HTML(f'<span style="color:{GREY};font-size:12px">multiples of '
                                              f'{CONCURRENCY_STEP}</span>')],
                                      layout=W.Layout(display="none", align_items="center"))
        self.scale_to_zero = W.Checkbox(value=False, description="Scale to zero when idle", indent=False,
                                        layout=W.Layout(width="220px"))
        self.units = W.IntText(value=50, layout=W.Layout(width="100px"))
        self.burst_scaling = W.Checkbox(value=True, description="Burst scaling", indent=False,
                                        layout=W.Layout(width="120px"))
        self.units_note = W.HTML(layout=W.Layout(flex="1 1 auto", width="auto"))
        self.advice = W.HTML()

    def _connect(self) -> None:
        self.model.observe(self._model_changed, names="value")
        self.version.observe(self._version_changed, names="value")
        self.entity_name.observe(lambda _: self.form.entity_changed(self), names="value")
        for w in (self.workload_type, self.size, self.min_concurrency, self.max_concurrency, self.scale_to_zero,
                  self.units, self.burst_scaling):
            w.observe(lambda _: self._compute_changed(), names="value")
        self.sizing.observe(self._sizing_changed, names="value")
        self.use_recommended.on_click(lambda _: self._apply_recommendation())
        self.remove_button.on_click(lambda _: self.form.remove_entity(self))

    # -- reading ------------------------------------------------------------------------------------
    @property
    def entity_label(self) -> str:
        return self.entity_name.value.strip() or self._default_name() or "(no model)"

    def _default_name(self) -> str:
        if not self.model.value or not self.version.value:
            return ""
        return rules.default_entity_name(self.model.value, self.version.value)

    def entity(self) -> dict:
        """The `served_entities[]` item this editor describes (no `entity_name` before a model is chosen)."""
        if self.kind == "pt":
            e = genai.pt_entity(self.model.value or "", self.version.value or None, int(self.units.value),
                                name=self.entity_name.value.strip() or None,
                                burst_scaling=None if self.burst_scaling.value else False)
            if not self.model.value:
                del e["entity_name"]
            return e
        by_size = self.sizing.value == "size"
        e: dict[str, Any] = rules.served_entity(
            self.model.value or "", self.version.value or None, name=self.entity_name.value.strip() or None,
            workload_type=self.workload_type.value, workload_size=self.size.value if by_size else None,
            min_concurrency=None if by_size else int(self.min_concurrency.value),
            max_concurrency=None if by_size else int(self.max_concurrency.value),
            scale_to_zero=bool(self.scale_to_zero.value))
        if not self.model.value:
            del e["entity_name"]
        return e

    def set_index(self, index: int) -> None:
        self.index = index
        self.title.value = (f'<span style="font-weight:600;font-size:14px">Served entity {index + 1}</span>'
                            f'<span style="color:{GREY}"> · {esc(self.entity_label)}</span>')

    def set_kind(self, kind: str) -> None:
        """Show the fields of `kind`: model units for provisioned throughput, compute and scaling otherwise."""
        self.kind = kind
        for row in self.compute_rows:
            row.layout.display = "none" if kind == "pt" else None
        self.pt_row.layout.display = None if kind == "pt" else "none"
        self._render_advice()

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.model, self.version, self.entity_name, self.workload_type, self.sizing, self.size,
                  self.min_concurrency, self.max_concurrency, self.scale_to_zero, self.remove_button, self.units,
                  self.burst_scaling):
            w.disabled = disabled
        self.use_recommended.disabled = disabled or not self._recommendation_differs()

    # -- models -------------------------------------------------------------------------------------
    def set_models(self, models: list[str], preferred: str | None = None,
                   version: str | int | None = None) -> None:
        self.preferred = (preferred, _version_or_none(version))
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
        self.form.entity_changed(self)
        if model:
            self.form.bg.submit(self._load_versions, model)

    def _pick_version(self, model: str, versions: list[str]) -> str | None:
        preferred = self.preferred[1] if model == self.preferred[0] else None
        if preferred in versions:
            return preferred
        # a second entity of the same model is usually another version (A/B, canary): the newest one
        # no other entity serves yet
        used = {e.version.value for e in self.form.entities if e is not self and e.model.value == model}
        return next((v for v in versions if v not in used), versions[0] if versions else None)

    def _load_versions(self, model: str) -> None:
        versions = self.form.catalog.versions(model)
        if self.model.value != model:  # the user moved on
            return
        value = self._pick_version(model, versions)
        self.version.options = versions
        if not versions:
            self.form.entity_changed(self)
        elif self.version.value != value:
            self.version.value = value
        else:
            self._version_changed({"new": value})

    def _version_changed(self, change) -> None:
        version = change["new"]
        self.info = None
        default = self._default_name()
        follows_default = self.entity_name.value.strip() in ("", self._auto_name)
        self._auto_name = default
        if follows_default:
            self.entity_name.value = default
        self.form.entity_changed(self)
        if self.model.value and version:
            self.form.bg.submit(self._load_info, self.model.value, version)

    def _load_info(self, model: str, version: str) -> None:
        info = self.form.catalog.info(model, version)
        if (self.model.value, self.version.value) != (model, version):
            return
        self.info = info
        self._render_advice()
        self.form.entity_changed(self)

    # -- compute ------------------------------------------------------------------------------------
    def _sizing_changed(self, change) -> None:
        concurrency = change["new"] == "concurrency"
        self.size.layout.display = "none" if concurrency else None
        self.concurrency_box.layout.display = None if concurrency else "none"
        self._compute_changed()

    def request_workload_type(self, name: str) -> bool:
        """Select workload type `name` if this cloud offers it; otherwise keep the current one and say
        why (with the types that exist here). Returns whether it was selected."""
        cloud = self.form.cloud
        if find_workload_type(cloud, name) is not None:
            self.unavailable = ""
            self.workload_type.value = name
            return True
        info = self.info
        advice = gpu_fit.check(cloud, name, info.size_bytes if info else None, info.flavors if info else ())
        self._kept_type = self.workload_type.value
        self.unavailable = advice[0].text if advice else f"{name} is not offered on {cloud.upper()}."
        return False

    @observe("unavailable")
    def _unavailable_changed(self, change) -> None:
        if change["new"]:
            self._compute_changed()

    def _compute_changed(self) -> None:
        if self.unavailable and self.workload_type.value != self._kept_type:
            self.unavailable = ""  # the user chose a type
        self._render_advice()
        self.form.entity_changed(self)

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
        pt = self.kind == "pt"
        self.units_note.value = units_html(self.units.value, self.burst_scaling.value) if pt else ""
        self.advice.value = advice_html(self.form.cloud, self.entity(), self.info, None if pt else self.recommendation(),
                                        [] if pt else self.advice_items(), self.unavailable) + self._task_html()
        self.use_recommended.disabled = self.model.disabled or not self._recommendation_differs()

    def show_units_error(self, message: str) -> None:
        """The rules' verdict on the model units beside them ('' : what the units mean instead)."""
        self.units_note.value = field_error(message) if message else units_html(self.units.value,
                                                                                self.burst_scaling.value)

    def _task_html(self) -> str:
        """The model's MLmodel task when it matters: an agent's, or a warning when Agent is chosen for a model
        that is not one."""
        task = self.info.task if self.info is not None else ""
        if self.kind == "agent" and self.info is not None and not genai.is_agent_task(task):
            return note(f"{self.entity_label}: this model's MLmodel has {f'task {task}' if task else 'no task'}, not "
                        "an agent's (agent/v1/responses, agent/v2/chat): log it as a ResponsesAgent or ChatAgent, "
                        "or choose Registered model.", "warning")
        return note(f"Task {task}" + (" (an agent)" if genai.is_agent_task(task) else ""), "info") if task else ""
