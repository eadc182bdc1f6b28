"""The GenAI parts of the create form: the entity kind selector and the external-model fields.

- `KINDS`: Registered model, Agent, External model, Provisioned throughput; `apply_kind` shows the
  fields of a kind as Databricks' form does (external: provider, task, model name, API base, the API
  key's secret; provisioned throughput: model units on each entity; registered models and agents: the
  model, version and workload fields).
- `ExternalFields`: an external model's fields, with the secret scopes and keys listed through the
  client (`secret_scopes`, `secret_keys`: names only) where the backend allows it. Its errors come from
  `core.rules.normalize_config` (which calls `core.external_models`) and stand beside their field.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as W

from jupyter_serving.core import genai, rules
from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.core.external_models import EXTERNAL_PROVIDERS, EXTERNAL_TASKS
from jupyter_serving.widgets._common import GREY, RED, esc, field_row, message_of

if TYPE_CHECKING:
    from jupyter_serving.widgets.create_form import CreateEndpointForm

KINDS = (("Registered model", "model"), ("Agent", "agent"), ("External model", "external"),
         ("Provisioned throughput", "pt"))
TASK_LABELS = {"llm/v1/chat": "Chat", "llm/v1/completions": "Completions", "llm/v1/embeddings": "Embeddings"}
# Which field a rule's message is about (first match wins); the others stand under the form only.
FIELD_WORDS = (("secret", ("openai_api_key", "API key", "secret")), ("api_base", ("openai_api_base",)),
               ("model", ("external_model.name",)), ("provider", ("provider",)), ("task", ("task",)),
               ("entity", ("Served entity name", "served entity name")))


def field_error(message: str) -> str:
    """The HTML of an error standing beside its field ('' for none)."""
    if not message:
        return ""
    return (f'<span class="jupyter-serving-field-error" style="color:{RED};font-size:12px">'
            f"&nbsp;✖ {esc(message)}</span>")


def field_of(message: str) -> str:
    """The external-model field a rule's message names ('' when none)."""
    for field, words in FIELD_WORDS:
        if any(w in message for w in words):
            return field
    return ""


def apply_kind(form: CreateEndpointForm, kind: str) -> None:
    """Show the fields of `kind` and hide the others."""
    external = kind == "external"
    form.entities_box.layout.display = "none" if external else None
    form.add_button.layout.display = "none" if external else None
    form.gpu_section.layout.display = None if kind in ("model", "agent") else "none"
    form.external.layout.display = None if external else "none"
    for editor in form.entities:
        editor.set_kind(kind)
    if external:
        form.external.load_secrets()


class ExternalFields(W.VBox):
    """An external model's fields: provider, task, model name, entity name, API base, API key secret."""

    FIELDS = ("provider", "task", "model", "entity", "api_base", "secret")

    def __init__(self, form: CreateEndpointForm):
        self.form = form
        self._loaded = False
        self.provider = W.Dropdown(options=list(EXTERNAL_PROVIDERS), value="openai", layout=W.Layout(width="220px"))
        self.task = W.Dropdown(options=[(f"{TASK_LABELS[t]} · {t}", t) for t in EXTERNAL_TASKS],
                               value="llm/v1/chat", layout=W.Layout(width="260px"))
        self.model_name = W.Text(placeholder="gpt-4o-mini", layout=W.Layout(width="260px"))
        self.entity_name = W.Text(placeholder="(default: from the model name)", layout=W.Layout(width="260px"))
        self.api_base = W.Text(placeholder="http://127.0.0.1:8000/v1", layout=W.Layout(width="340px"))
        self.scope = W.Combobox(placeholder="scope", ensure_option=False, layout=W.Layout(width="160px"))
        self.key = W.Combobox(placeholder="key", ensure_option=False, layout=W.Layout(width="160px"))
        self.refresh = W.Button(icon="refresh", tooltip="List the secret scopes and keys again",
                                layout=W.Layout(width="36px"))
        self.notes = {f: W.HTML(layout=W.Layout(flex="1 1 auto", width="auto")) for f in self.FIELDS}
        self.secret_info = W.HTML()
        super().__init__([
            W.HTML('<div style="font-weight:600;margin-top:6px">External model</div>'),
            field_row("Provider", self.provider, self.notes["provider"]),
            field_row("Task", self.task, self.notes["task"]),
            field_row("Model name", self.model_name, self.notes["model"]),
            field_row("Entity name", self.entity_name, self.notes["entity"]),
            field_row("API base", self.api_base, self.notes["api_base"]),
            field_row("API key", self.scope, W.HTML("&nbsp;/&nbsp;"), self.key, self.refresh, self.notes["secret"]),
            self.secret_info,
        ], layout=W.Layout(display="none", border="1px solid #d0d7de", padding="6px 10px", margin="4px 0"))
        self.add_class("jupyter-serving-external")
        for w in (self.provider, self.task, self.model_name, self.entity_name, self.api_base, self.key):
            w.observe(lambda _: self.form.entity_changed(None), names="value")
        self.scope.observe(self._scope_changed, names="value")
        self.refresh.on_click(lambda _: self.load_secrets(force=True))

    # -- reading ------------------------------------------------------------------------------------
    def entity(self) -> dict:
        """The `served_entities[]` item these fields describe (a secret reference, never a key)."""
        scope, key = self.scope.value.strip(), self.key.value.strip()
        return genai.external_entity(self.model_name.value, provider=self.provider.value, task=self.task.value,
                                     api_base=self.api_base.value.strip() or None,
                                     secret=(scope, key) if scope and key else None,
                                     name=self.entity_name.value.strip() or None)

    @property
    def entity_label(self) -> str:
        return self.entity_name.value.strip() or self.model_name.value.strip() or "(no model)"

    def errors(self) -> list[str]:
        """What the rules say about these fields (shown beside the field each names)."""
        notes = dict.fromkeys(self.FIELDS, "")
        messages: list[str] = []
        scope, key = self.scope.value.strip(), self.key.value.strip()
        if scope or key:
            try:
                genai.parse_secret(f"{scope}/{key}")
            except InvalidInputError as err:
                notes["secret"] = err.message
                messages.append(f"API key secret: {err.message}.")
        if not messages:
            try:
                rules.normalize_config({"served_entities": [self.entity()]}, self.form.cloud)
            except rules.RuleViolation as err:
                messages.append(err.message)
                field = field_of(err.message)
                if field:
                    notes[field] = err.message.split(": ", 1)[-1]
        for field, text in notes.items():
            self.notes[field].value = field_error(text)
        return messages

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.provider, self.task, self.model_name, self.entity_name, self.api_base, self.scope, self.key,
                  self.refresh):
            w.disabled = disabled

    # -- secrets ------------------------------------------------------------------------------------
    def load_secrets(self, force: bool = False) -> None:
        """List the secret scopes (and the chosen scope's keys) in the background, once unless `force`."""
        if self._loaded and not force:
            return
        self._loaded = True
        self.form.bg.submit(self._load_scopes)

    def _list(self, what: str, *args: Any) -> list[str] | None:
        lister = getattr(self.form.client, what, None)
        if lister is None:
            return None
        try:
            return list(lister(*args))
        except Exception as err:  # noqa: BLE001 - shown under the fields; typing the names still works
            self.secret_info.value = (f'<div style="color:{GREY};font-size:12px">The secrets could not be listed '
                                      f"({esc(message_of(err))}): type the scope and key.</div>")
            return None

    def _load_scopes(self) -> None:
        scopes = self._list("secret_scopes")
        if scopes is None:
            return
        self.scope.options = tuple(scopes)
        self.secret_info.value = (f'<div style="color:{GREY};font-size:12px">{len(scopes)} secret scope'
                                  f"{'' if len(scopes) == 1 else 's'}. Store a key with `jupyter-serving local "
                                  "secrets put SCOPE KEY` (or w.secrets.put_secret), then ↻.</div>")
        if self.scope.value.strip() in scopes:
            self._load_keys(self.scope.value.strip())

    def _load_keys(self, scope: str) -> None:
        keys = self._list("secret_keys", scope)
        if keys is not None and self.scope.value.strip() == scope:
            self.key.options = tuple(keys)
            if len(keys) == 1 and not self.key.value.strip():
                self.key.value = keys[0]

    def _scope_changed(self, change) -> None:
        scope = change["new"].strip()
        self.key.options = ()
        if scope and scope in self.scope.options:
            self.form.bg.submit(self._load_keys, scope)
        self.form.entity_changed(None)
