"""The AI Gateway section of the create form: usage tracking, an inference table, rate limits by calls
and tokens per key, guardrails (keywords, PII behaviour) and fallbacks.

The settings are built by `core.ai_gateway.build` and checked by `core.rules.validate_ai_gateway`
(through `core.ai_gateway.check`); each error stands beside the field it is about.
"""
from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W

from jupyter_serving.core import ai_gateway, rules
from jupyter_serving.core.errors import InvalidInputError
from jupyter_serving.widgets._common import GREY, field_row
from jupyter_serving.widgets.genai_fields import field_error

KEYS = (("per user", "user"), ("per endpoint", "endpoint"), ("per group", "user_group"),
        ("per service principal", "service_principal"))
PII = (("PII: off", "none"), ("PII: block", "block"), ("PII: mask", "mask"))
SIDES = (("Input", "input"), ("Output", "output"), ("Both", "both"))
FIELDS = ("table", "rate", "guardrails")


class RateLimitRow(W.HBox):
    """One rate limit: calls and/or tokens per minute, for a key (and its principal)."""

    def __init__(self, on_change: Callable[[], None], on_remove: Callable[[RateLimitRow], None]):
        self.calls = W.Text(placeholder="calls/min", layout=W.Layout(width="100px"))
        self.tokens = W.Text(placeholder="tokens/min", layout=W.Layout(width="110px"))
        self.key = W.Dropdown(options=KEYS, value="user", layout=W.Layout(width="190px"))
        self.principal = W.Text(placeholder="group or principal", layout=W.Layout(width="170px"))
        self.remove = W.Button(icon="trash", tooltip="Remove this rate limit", layout=W.Layout(width="36px"))
        super().__init__([self.calls, self.tokens, self.key, self.principal, self.remove],
                         layout=W.Layout(align_items="center", margin="1px 0"))
        for w in (self.calls, self.tokens, self.key, self.principal):
            w.observe(lambda _: on_change(), names="value")
        self.remove.on_click(lambda _: on_remove(self))

    def limit(self) -> dict:
        """The rate limit (InvalidInputError when a count is not a whole number)."""
        calls, tokens = self.calls.value.strip() or None, self.tokens.value.strip() or None
        principal = self.principal.value.strip()
        return ai_gateway.rate_limit(calls, tokens, f"{self.key.value}:{principal}" if principal else self.key.value)

    def set_disabled(self, disabled: bool) -> None:
        for w in self.children:
            w.disabled = disabled


class GatewayFields(W.VBox):
    """The AI Gateway settings of a new endpoint; `settings()` is its `ai_gateway` (None: none)."""

    def __init__(self, on_change: Callable[[], None]):
        self._on_change = on_change
        self.usage = W.Checkbox(value=False, description="Usage tracking", indent=False, layout=W.Layout(width="200px"))
        self.table = W.Checkbox(value=False, description="Inference table", indent=False,
                                layout=W.Layout(width="140px"))
        self.catalog = W.Text(placeholder="catalog", layout=W.Layout(width="120px"))
        self.schema = W.Text(placeholder="schema", layout=W.Layout(width="120px"))
        self.prefix = W.Text(placeholder="table prefix", layout=W.Layout(width="140px"))
        self.rows: list[RateLimitRow] = []
        self.rows_box = W.VBox()
        self.add_limit = W.Button(description="Add rate limit", icon="plus", layout=W.Layout(width="160px"))
        self.keywords = W.Text(placeholder="blocked words, comma-separated", layout=W.Layout(width="300px"))
        self.pii = W.Dropdown(options=PII, value="none", layout=W.Layout(width="130px"))
        self.sides = W.ToggleButtons(options=SIDES, value="both", style={"button_width": "70px"})
        self.fallback = W.Checkbox(value=False, description="Fall back to the other entities when one fails",
                                   indent=False, layout=W.Layout(width="340px"))
        self.notes = {f: W.HTML(layout=W.Layout(flex="1 1 auto", width="auto")) for f in FIELDS}
        super().__init__([
            field_row("Usage", self.usage),
            field_row("Payloads", self.table, self.catalog, self.schema, self.prefix, self.notes["table"]),
            field_row("Rate limits", self.add_limit, self.notes["rate"]),
            self.rows_box,
            field_row("Guardrails", self.keywords, self.pii, self.sides, self.notes["guardrails"]),
            field_row("Fallback", self.fallback),
            W.HTML(f'<div style="color:{GREY};font-size:12px">Rate limits count per minute. Guardrails block '
                   "queries (and answers) with the words given, and block or mask personal data.</div>"),
        ])
        self.add_class("jupyter-serving-gateway")
        for w in (self.usage, self.table, self.catalog, self.schema, self.prefix, self.keywords, self.pii,
                  self.sides, self.fallback):
            w.observe(lambda _: self._on_change(), names="value")
        self.add_limit.on_click(lambda _: self.add_rate_limit())

    def add_rate_limit(self, calls: int | str = "", tokens: int | str = "", key: str = "user",
                       principal: str = "") -> RateLimitRow:
        row = RateLimitRow(self._on_change, self.remove_rate_limit)
        row.calls.value, row.tokens.value, row.key.value, row.principal.value = str(calls), str(tokens), key, principal
        self.rows.append(row)
        self.rows_box.children = tuple(self.rows)
        self._on_change()
        return row

    def remove_rate_limit(self, row: RateLimitRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            self.rows_box.children = tuple(self.rows)
            row.close()
            self._on_change()

    def _changes(self, errors: dict[str, str]) -> dict:
        """The `ai_gateway.build` arguments of the fields; parse errors go to `errors` by field."""
        changes: dict = {}
        if self.usage.value:
            changes["usage_tracking"] = True
        parts = [w.value.strip() for w in (self.catalog, self.schema, self.prefix)]
        if self.table.value and not all(parts):
            errors["table"] = "Give the inference table's catalog, schema and table prefix"
        elif self.table.value:
            try:
                changes["inference_table"] = ai_gateway.parse_inference_table(".".join(parts))
            except InvalidInputError as err:
                errors["table"] = err.message
        limits = []
        for index, row in enumerate(self.rows):
            try:
                limits.append(row.limit())
            except InvalidInputError as err:
                errors.setdefault("rate", f"Rate limit #{index + 1}: {err.message.removeprefix('Rate-limit ')}")
        if limits:
            changes["rate_limits"] = limits
        try:
            if ai_gateway.parse_keywords(self.keywords.value):
                changes["guardrail_keywords"] = self.keywords.value
        except InvalidInputError as err:
            errors["guardrails"] = err.message
        if self.pii.value != "none":
            changes["pii"] = self.pii.value
        if self.fallback.value:
            changes["fallback"] = True
        return changes

    def check(self) -> tuple[dict | None, dict[str, str]]:
        """(the `ai_gateway` settings or None, the errors by field), with the rules' verdict."""
        errors: dict[str, str] = {}
        changes = self._changes(errors)
        settings = ai_gateway.build({}, **changes, guardrails_on=self.sides.value) if changes else None
        if settings is not None and not errors:
            try:
                ai_gateway.check(settings)
            except rules.RuleViolation as err:
                errors["rate" if "ate limit" in err.message else "table"] = err.message
        for field in FIELDS:
            self.notes[field].value = field_error(errors.get(field, ""))
        return settings, errors

    def settings(self) -> dict | None:
        return self.check()[0]

    def summary(self) -> str:
        """The section's title: what is on."""
        settings, _ = self.check()
        if not settings:
            return "AI Gateway · off"
        return "AI Gateway · " + ", ".join(line for line in ai_gateway.describe(settings)
                                           if not line.endswith((": off", ": none")))

    def set_disabled(self, disabled: bool) -> None:
        for w in (self.usage, self.table, self.catalog, self.schema, self.prefix, self.add_limit, self.keywords,
                  self.pii, self.sides, self.fallback):
            w.disabled = disabled
        for row in self.rows:
            row.set_disabled(disabled)
