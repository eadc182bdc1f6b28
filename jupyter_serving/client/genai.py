"""GenAI endpoints: external models, provisioned throughput and AI Gateway settings, through
databricks-sdk's typed classes (`ExternalModel`, `PtEndpointCoreConfig` and
`create_provisioned_throughput_endpoint`, `put_ai_gateway`), and the secret scopes and keys an external
model's API key can come from (names only: no value is ever read). Everything is checked with
`core.rules` before it is sent."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_serving.client.base import DEFAULT_WAIT_TIMEOUT, ProgressCallback, wait_hint
from jupyter_serving.client.checks import check_config, check_endpoint_name, rule_error
from jupyter_serving.client.deploy import DeployMixin
from jupyter_serving.client.sdk_compat import typed_ai_gateway, typed_pt_config
from jupyter_serving.core import ai_gateway as ai_rules
from jupyter_serving.core import genai, rules
from jupyter_serving.core.errors import Hint, InvalidInputError, NotFoundError, ServingError
from jupyter_serving.core.status import EndpointStatus

PT_FIELDS = ("entity_name", "entity_version", "name", "provisioned_model_units", "burst_scaling_enabled")
PUT_SECRET = Hint(
    python="Store it first: `w.secrets.put_secret('{scope}', '{key}', string_value=...)` (or `jupyter-serving "
           "local secrets put {scope} {key}`).",
    magic="Store it first: `jupyter-serving local secrets put {scope} {key}` in a terminal (or "
          "`WorkspaceClient().secrets.put_secret('{scope}', '{key}', string_value=...)`).")


def _put_secret_hint(scope: str, key: str) -> Hint:
    return Hint(python=PUT_SECRET.python.format(scope=scope, key=key),
                magic=PUT_SECRET.magic.format(scope=scope, key=key))


class GenAIMixin(DeployMixin):
    # -- external models -------------------------------------------------------------------------
    def create_external(
        self,
        name: str,
        model: str,
        *,
        provider: str = "openai",
        task: str | None = "chat",
        api_base: str | None = None,
        secret: str | tuple[str, str] | None = None,
        api_key_plaintext: str | None = None,
        entity_name: str | None = None,
        ai_gateway: Mapping | None = None,
        tags: Mapping[str, str] | list | None = None,
        description: str | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Create an endpoint forwarding to an external model: `model` (the provider's name for it) at
        `api_base` (any OpenAI-compatible server), task 'chat', 'completions' or 'embeddings', with the API
        key from secret `secret` ('scope/key'; checked to exist first where the scope can be listed), or
        `api_key_plaintext` (moved into the secret store by the server; prefer a secret)."""
        entity = genai.external_entity(model, provider=provider, task=task, api_base=api_base, secret=secret,
                                       api_key_plaintext=api_key_plaintext, name=entity_name)
        check_endpoint_name(name)
        check_config({"served_entities": [dict(entity)]}, self.cloud)
        if secret:
            self._check_secret(*(secret if isinstance(secret, tuple) else genai.parse_secret(secret)))
        return self.create(name, {"served_entities": [entity]}, tags=tags, description=description,
                           ai_gateway=ai_gateway, wait=wait, timeout=timeout, on_progress=on_progress)

    def secret_scopes(self) -> list[str]:
        """The secret scopes this identity can see (names only), sorted."""
        scopes = self._call(lambda: list(self.workspace.secrets.list_scopes()), what="Listing secret scopes")
        return sorted(s.name for s in scopes if getattr(s, "name", None))

    def secret_keys(self, scope: str) -> list[str]:
        """The keys of secret scope `scope` (never their values), sorted."""
        listed = self._call(lambda: list(self.workspace.secrets.list_secrets(scope)),
                            what=f"Listing the secrets of scope '{scope}'",
                            not_found_hint=_put_secret_hint(scope, "KEY"))
        return sorted(s.key for s in listed if getattr(s, "key", None))

    def _check_secret(self, scope: str, key: str) -> None:
        """Refuse a secret that is not there, before the endpoint is created (skipped when the scope
        cannot be listed: the server then decides)."""
        try:
            keys = self.secret_keys(scope)
        except NotFoundError:
            raise NotFoundError(f"No secret scope '{scope}'", _put_secret_hint(scope, key),
                                error_code="RESOURCE_DOES_NOT_EXIST") from None
        except ServingError:  # no READ on the scope here (the server checks the creator's), unreachable, ...
            return
        if key not in keys:
            raise NotFoundError(f"Secret scope '{scope}' has no key '{key}' (its keys: {', '.join(keys) or 'none'})",
                                _put_secret_hint(scope, key), error_code="RESOURCE_DOES_NOT_EXIST")

    # -- provisioned throughput ------------------------------------------------------------------
    def create_pt(
        self,
        name: str,
        model: str,
        version: str | int | None = None,
        *,
        units: int,
        entity_name: str | None = None,
        burst_scaling: bool | None = None,
        ai_gateway: Mapping | None = None,
        tags: Mapping[str, str] | list | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Create a provisioned-throughput endpoint serving `model` (version `version`, default the latest)
        with `units` model units (`create_provisioned_throughput_endpoint`). Locally one unit is
        `core.rules.PT_TOKENS_PER_UNIT_PER_S` tokens per second (see `core.genai.pt_throughput_text`)."""
        return self.create(name, model=model, version=version, entity_name=entity_name,
                           provisioned_model_units=units, burst_scaling=burst_scaling, ai_gateway=ai_gateway,
                           tags=tags, wait=wait, timeout=timeout, on_progress=on_progress)

    def update_pt(
        self,
        name: str,
        units: int,
        *,
        entity: str | None = None,
        version: str | int | None = None,
        burst_scaling: bool | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Give served entity `entity` (optional when there is one) of a provisioned-throughput endpoint
        `units` model units (and optionally another version), through
        `update_provisioned_throughput_endpoint_config`. The other entities and the traffic are kept."""
        status = self.get(name)
        self._not_updating(status, "change its model units")
        self._not_stopped(status, "updated")
        if not genai.is_pt_config(status.config):
            raise InvalidInputError(f"Endpoint '{name}' is not a provisioned-throughput endpoint", Hint(
                python=f"Change its compute with `client.update_config('{name}', ...)`.",
                magic=f"Change its compute with `%serve update {name} ...`."))
        target = self._pick_entity(status, entity)
        entities = [{k: e[k] for k in PT_FIELDS if e.get(k) is not None} for e in status.entities]
        for e in entities:
            if e["name"] == target:
                e["provisioned_model_units"] = units
                if version not in (None, ""):
                    e["entity_version"] = str(version)
                if burst_scaling is not None:
                    e["burst_scaling_enabled"] = bool(burst_scaling)
        core: dict[str, Any] = {"served_entities": entities}
        if status.traffic:
            core["traffic_config"] = {"routes": [{"served_model_name": k, "traffic_percentage": v}
                                                 for k, v in status.traffic.items()]}
        check_config(core, self.cloud)
        self._send_pt_config(name, core)
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress)

    def _send_pt_config(self, name: str, core: dict) -> None:
        what = f"Updating the model units of endpoint '{name}'"
        conflict_hint = wait_hint("Wait for the running update to finish ({how}) and try again.", name)
        typed = typed_pt_config(core)
        if typed is not None:
            update = self.workspace.serving_endpoints.update_provisioned_throughput_endpoint_config
            self._call(lambda: update(name=name, config=typed), what=what, conflict_hint=conflict_hint)
        else:
            self._do("PUT", f"/api/2.0/serving-endpoints/pt/{name}/config", body={"config": core}, what=what,
                     conflict_hint=conflict_hint)

    # -- AI Gateway ------------------------------------------------------------------------------
    def ai_gateway(self, name: str) -> dict:
        """The endpoint's AI Gateway settings ({} when it has none)."""
        return dict(self.get(name).raw.get("ai_gateway") or {})

    def set_ai_gateway(
        self,
        name: str,
        config: Mapping | None = None,
        *,
        replace: bool = False,
        usage_tracking: bool | None = None,
        inference_table: str | Mapping | bool | None = None,
        rate_limits: Iterable | None = None,
        guardrail_keywords: str | Iterable[str] | None = None,
        pii: str | None = None,
        guardrails_on: str = "both",
        fallback: bool | None = None,
    ) -> dict:
        """Change the endpoint's AI Gateway settings (`put_ai_gateway`) and return them.

        The settings given change the current ones (`replace`: start from none; `config`: a whole
        `ai_gateway` to start from instead): `usage_tracking`, `inference_table` 'catalog.schema.prefix'
        (False disables it), `rate_limits` (replacing the list: '100/min per user', '5000 tokens/min per
        group:eng', or dicts), `guardrail_keywords` and `pii` ('block', 'mask', 'none') on
        `guardrails_on` ('input', 'output', 'both'), `fallback`. Checked with `core.rules` first.
        """
        status = self.get(name)
        current = dict(status.raw.get("ai_gateway") or {})
        base = dict(config) if config is not None else ({} if replace else current)
        new = ai_rules.build(base, usage_tracking=usage_tracking, inference_table=inference_table,
                             rate_limits=rate_limits, guardrail_keywords=guardrail_keywords, pii=pii,
                             guardrails_on=guardrails_on, fallback=fallback)
        try:
            ai_rules.check(new, current)
        except rules.RuleViolation as err:
            raise rule_error(err) from None
        self._put_ai_gateway(name, new)
        return self.ai_gateway(name)

    def _put_ai_gateway(self, name: str, settings: dict) -> None:
        check_endpoint_name(name)
        what = f"Changing the AI Gateway of endpoint '{name}'"
        typed = typed_ai_gateway(settings)
        if typed is not None:
            self._call(lambda: self.workspace.serving_endpoints.put_ai_gateway(name=name, **typed), what=what)
        else:
            self._do("PUT", f"/api/2.0/serving-endpoints/{name}/ai-gateway", body=settings, what=what)
