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
    """Validation messages, with the same rules the backend applies (empty: valid)."""
    errors = _name_errors(form, form.name.value.strip())
    for e in form.entities:
        if e.unavailable:
            errors.append(f"Served entity #{e.index + 1}: {e.unavailable} Pick a workload type offered here.")
    missing = [e.index + 1 for e in form.entities if not (e.model.value and e.version.value)]
    if missing:
        errors.append("Served entity " + ", ".join(f"#{i}" for i in missing) + ": choose a model and a version.")
        return errors
    try:
        rules.normalize_config(form.config(), form.cloud)
    except rules.RuleViolation as err:
        errors.append(err.message)
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
    split = ", ".join(f"{k} {v}%" for k, v in form.traffic_split().items())
    count = len(form.entities)
    ok = note(f"Valid: {count} served entit{'y' if count == 1 else 'ies'} "
              f"({split}). Create sends it to {getattr(form.client, 'backend', 'the backend')}.", "ok")
    return ok + "".join(note(f"{e.entity_label}: {a.text}", a.level) for e in form.entities
                        for a in e.advice_items() if a.level in ("error", "warning"))
