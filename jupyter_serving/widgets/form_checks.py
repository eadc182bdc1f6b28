"""What the create form checks and says about itself: endpoint-name suggestions, validation with the
backend's own rules (`core.rules`), and the HTML of the name badge and the validation callouts.

Functions over the form's state; they change no widget.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jupyter_serving.core import rules
from jupyter_serving.widgets._common import GREEN, RED, esc, note

if TYPE_CHECKING:
    from jupyter_serving.widgets.create_form import CreateEndpointForm


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


def _name_errors(form: CreateEndpointForm, name: str) -> list[str]:
    try:
        rules.validate_endpoint_name(name)
    except rules.RuleViolation as err:
        return [err.message]
    if name in form.existing and not form.is_created(name):
        return [f"An endpoint named '{name}' already exists: choose another name "
                f"(or change it with %serve update {name} ...)."]
    return []


def validate_form(form: CreateEndpointForm) -> list[str]:
    """Validation messages, with the same rules the backend applies (empty: valid); the entities' (or the
    external model's) and the AI Gateway's errors also stand beside their fields."""
    errors = _name_errors(form, form.name.value.strip())
    _, gateway_errors = form.gateway.check()
    if form.kind == "external":
        return errors + form.external.errors() + list(gateway_errors.values())
    return errors + _entity_errors(form) + list(gateway_errors.values())


def _entity_errors(form: CreateEndpointForm) -> list[str]:
    errors: list[str] = []
    for e in form.entities:
        if e.unavailable:
            errors.append(f"Served entity #{e.index + 1}: {e.unavailable} Pick a workload type offered here.")
    missing = [e.index + 1 for e in form.entities if not (e.model.value and e.version.value)]
    if missing:
        errors.append("Served entity " + ", ".join(f"#{i}" for i in missing) + ": choose a model and a version.")
        return errors
    message = ""
    try:
        rules.normalize_config(form.config(), form.cloud)
    except rules.RuleViolation as err:
        message = err.message
        errors.append(err.message)
    if form.kind == "pt":  # a units error stands beside that entity's units
        for e in form.entities:
            about_units = "provisioned_model_units" in message and f"'{e.entity_label}'" in message
            e.show_units_error(message.split(": ", 1)[-1] if about_units else "")
    return errors


def name_note_html(form: CreateEndpointForm) -> str:
    """What stands beside the endpoint name: its error (invalid, taken), ✔ available, or nothing."""
    name = form.name.value.strip()
    if form.is_created(name):
        return ""
    errors = _name_errors(form, name) if name else []
    if errors:
        return (f'<span class="jupyter-serving-field-error" style="color:{RED};font-size:12px">'
                f"&nbsp;✖ {esc(errors[0])}</span>")
    if name:
        return f'<span style="color:{GREEN};font-size:12px">&nbsp;✔ available</span>'
    return ""


def validation_html(form: CreateEndpointForm) -> str:
    """The callouts under the form: loading, the errors, created, or valid with the GPU warnings."""
    name = form.name.value.strip()
    if form.state == "loading":
        return note("Reading the model registry…", "info")
    if form.errors:
        return "".join(note(e, "error") for e in form.errors)
    if form.state == "ready" and form.is_created(name):
        return note(f"Created '{name}'. Change the name to create another endpoint.", "ok")
    backend = getattr(form.client, "backend", "the backend")
    if form.kind == "external":
        ext = form.external.entity()["external_model"]
        return note(f"Valid: external model {ext['provider']}:{ext['name']} ({ext['task']}). Create sends it to "
                    f"{backend}.", "ok")
    split = ", ".join(f"{k} {v}%" for k, v in form.traffic_split().items())
    count = len(form.entities)
    what = "provisioned-throughput " if form.kind == "pt" else ("agent " if form.kind == "agent" else "")
    ok = note(f"Valid: {count} {what}served entit{'y' if count == 1 else 'ies'} ({split}). Create sends it to "
              f"{backend}.", "ok")
    return ok + "".join(note(f"{e.entity_label}: {a.text}", a.level) for e in form.entities
                        for a in e.advice_items() if a.level in ("error", "warning"))
