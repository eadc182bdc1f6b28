"""Deploying: create an endpoint, change its config (one served entity, the traffic, or the whole
config), and find a model's latest registered version. Every config is checked with `core.rules`
before it is sent."""
from __future__ import annotations

import json
from collections.abc import Mapping

from jupyter_serving.client.base import DEFAULT_WAIT_TIMEOUT, ProgressCallback, wait_hint
from jupyter_serving.client.checks import check_config, check_endpoint_name, rule_error
from jupyter_serving.client.endpoints import EndpointsMixin
from jupyter_serving.client.errors import server_message
from jupyter_serving.client.sdk_compat import entity_input_fields, typed_config, typed_create, typed_pt_create
from jupyter_serving.core import ai_gateway as ai_rules
from jupyter_serving.core import configs, rules
from jupyter_serving.core.arguments import routes_to_traffic_config
from jupyter_serving.core.errors import Hint, InvalidInputError, NotFoundError, one_line
from jupyter_serving.core.genai import is_pt_config
from jupyter_serving.core.status import EndpointStatus

GIVE_VERSION = Hint(python="Give the version explicitly, e.g. version=1.",
                    magic="Give the version explicitly, e.g. --version 1.")


def _highest(versions: list) -> str | None:
    numbers = [int(v) for v in versions if v is not None and str(v).isdigit()]
    return str(max(numbers)) if numbers else None


class DeployMixin(EndpointsMixin):
    # -- model versions --------------------------------------------------------------------------
    def latest_version(self, model: str) -> str:
        """The highest registered version of `model` (Unity Catalog, the workspace registry, or the
        local backend's MLflow registry)."""
        if self.is_local:
            return self._latest_registry_version(model)
        errors: list[str] = []
        lookups = (
            ("no versions in Unity Catalog", lambda: [v.version for v in self.workspace.model_versions.list(
                full_name=model)]),
            ("", lambda: [v.version for v in self.workspace.model_registry.get_latest_versions(name=model)]),
        )
        for empty, lookup in lookups:
            try:
                latest = _highest(lookup())
            except Exception as err:  # noqa: BLE001 - try the next registry
                errors.append(server_message(err))
                continue
            if latest:
                return latest
            if empty:
                errors.append(empty)
        raise InvalidInputError(f"No version given for model '{model}' and its latest version could not be "
                                f"looked up ({'; '.join(errors)[:200]})", GIVE_VERSION)

    def _latest_registry_version(self, model: str) -> str:
        """The latest version in the MLflow registry the backend reports (`ModelCatalog` asks it over
        HTTP); mlflow is imported only here."""
        from jupyter_serving.client.catalog import ModelCatalog

        try:
            latest = _highest(ModelCatalog(self).versions(model))
        except Exception as err:  # noqa: BLE001
            raise InvalidInputError(f"No version given for model '{model}' and the local registry could not "
                                    f"be read ({one_line(err)[:200]})", GIVE_VERSION) from None
        if latest is None:
            raise NotFoundError(f"Model '{model}' is not registered in the local registry",
                                "Register it first (mlflow.register_model) or check the name "
                                "(catalog.schema.model).", error_code="RESOURCE_DOES_NOT_EXIST")
        return latest

    # -- create ----------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        config: Mapping | None = None,
        *,
        model: str | None = None,
        version: str | int | None = None,
        entity_name: str | None = None,
        workload_type: str | None = None,
        workload_size: str | None = None,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        scale_to_zero: bool = False,
        provisioned_model_units: int | None = None,
        burst_scaling: bool | None = None,
        traffic: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | list | None = None,
        route_optimized: bool | None = None,
        description: str | None = None,
        ai_gateway: Mapping | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Create an endpoint serving `model` (one entity), or the entities of `config`.

        `config` is either the core config (`served_entities`, `traffic_config`, ...) or a full
        create request (`{"name", "config", "tags", "ai_gateway", ...}`); its entities may be external
        models. `provisioned_model_units` makes the `model` entity provisioned throughput; a config whose
        entities all are goes through `create_provisioned_throughput_endpoint`. `ai_gateway` (AI Gateway
        settings, see `jupyter_serving.core.ai_gateway.build`) replaces the config's. Validated
        client-side with `rules` before anything is sent. With `wait`, polls until the endpoint settles,
        calling `on_progress(status, elapsed)`; raises DeploymentFailedError if the deployment fails.
        """
        check_endpoint_name(name)
        entity_args = dict(name=entity_name, workload_type=workload_type, workload_size=workload_size,
                           min_concurrency=min_concurrency, max_concurrency=max_concurrency,
                           scale_to_zero=scale_to_zero)
        extra, core = self._create_core(name, config, model, version, entity_args,
                                        (provisioned_model_units, burst_scaling))
        request = configs.create_request(name, core, extra, traffic=traffic, tags=tags,
                                         route_optimized=route_optimized, description=description)
        if ai_gateway is not None:
            request["ai_gateway"] = json.loads(json.dumps(dict(ai_gateway)))
        check_config(core, self.cloud)
        try:
            ai_rules.check(request.get("ai_gateway"))
        except rules.RuleViolation as err:
            raise rule_error(err) from None
        try:
            self._send_create(request)
        except NotFoundError as err:
            models = [(e.get("entity_name"), e.get("entity_version")) for e in core.get("served_entities") or []]
            raise self._registered_elsewhere(models) or err from None
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress)

    def _create_core(self, name: str, config: Mapping | None, model: str | None, version: str | int | None,
                     entity_args: dict, units: tuple[int | None, bool | None]) -> tuple[dict, dict]:
        """(the request's fields but its config, the core config) of a create call."""
        if config is not None:
            if model:
                raise InvalidInputError("Give either a config or a model, not both", Hint(
                    python="Put every served entity in the config, or use model=.",
                    magic="Put every served entity in the config, or use --model."))
            return configs.split_create_config(name, config)
        if not model:
            raise InvalidInputError("Nothing to serve", Hint(
                python="Name a model (model='catalog.schema.model') or give a full config (config={...}).",
                magic="Name a model (--model catalog.schema.model) or give a full config (--from-json)."))
        try:
            version = version if version not in (None, "") else self.latest_version(model)
        except NotFoundError as err:
            raise self._registered_elsewhere([(model, None)]) or err from None
        pt_units, burst = units
        if pt_units is not None:  # workload settings beside the units are the rules' to refuse
            entity_args = {**entity_args, "scale_to_zero": entity_args["scale_to_zero"] or None}
        entity = rules.served_entity(model, version, **entity_args)
        if pt_units is not None:
            entity["provisioned_model_units"] = pt_units
            if burst is not None:
                entity["burst_scaling_enabled"] = bool(burst)
        return {}, {"served_entities": [entity]}

    def _registered_elsewhere(self, models: list[tuple[str | None, str | None]]) -> NotFoundError | None:
        """For the local backend: the error saying where a model the backend lacks was registered
        instead (see `registries`), or None."""
        if not self.is_local:
            return None
        from jupyter_serving.client.registries import local_registry_uri, registered_elsewhere

        target = getattr(self, "target", None)
        uri = local_registry_uri(target.data_dir if target is not None else None)
        for model, version in models:
            if model:
                found = registered_elsewhere(model, None if version is None else str(version), uri)
                if found is not None:
                    return found
        return None

    def _send_create(self, request: dict) -> None:
        name = request["name"]
        hints = {
            "conflict_hint": Hint(
                python=f"Pick another name, or change the existing endpoint with `client.update_config('{name}', "
                       f"...)` (delete it first with `client.delete('{name}')` to recreate it).",
                magic=f"Pick another name, or change the existing endpoint with `%serve update {name} ...` "
                      f"(delete it first with `%serve delete {name} --yes` to recreate it)."),
            "not_found_hint": "Check the model's full name (catalog.schema.model) and version.",
        }
        what = f"Creating endpoint '{name}'"
        if is_pt_config(request["config"]):
            typed = typed_pt_create(request)
            if typed is not None:  # else the regular create, which takes provisioned_model_units too
                create_pt = self.workspace.serving_endpoints.create_provisioned_throughput_endpoint
                self._call(lambda: create_pt(**typed), what=what, **hints)
                return
        typed = typed_create(request)
        if typed is not None:
            self._call(lambda: self.workspace.serving_endpoints.create(**typed), what=what, **hints)
        else:
            self._do("POST", "/api/2.0/serving-endpoints", body=request, what=what, **hints)

    # -- update ----------------------------------------------------------------------------------
    def _send_config(self, name: str, core: dict) -> None:
        what = f"Updating endpoint '{name}'"
        conflict_hint = wait_hint("Wait for the running update to finish ({how}) and try again.", name)
        typed = typed_config(core)
        if typed is not None:
            self._call(lambda: self.workspace.serving_endpoints.update_config(name=name, **typed), what=what,
                       conflict_hint=conflict_hint)
        else:
            self._do("PUT", f"/api/2.0/serving-endpoints/{name}/config", body=core, what=what,
                     conflict_hint=conflict_hint)

    def _changed_config(self, status: EndpointStatus, entity: str | None, changes: dict,
                        traffic: Mapping[str, int] | None) -> dict:
        """The core config of `status` with one entity changed and/or new traffic."""
        if not changes and not traffic:
            raise InvalidInputError(f"Nothing to update on endpoint '{status.name}'", configs.NOTHING_TO_UPDATE)
        fields = entity_input_fields()
        entities = [configs.input_entity(e, fields) for e in status.entities]
        routes = dict(status.traffic)
        if changes:
            routes = configs.change_entity(entities, routes, self._pick_entity(status, entity), changes)
        if traffic:
            routes = dict(traffic)
        core: dict = {"served_entities": entities}
        if routes:
            core["traffic_config"] = routes_to_traffic_config(routes)
        return core

    def update_config(
        self,
        name: str,
        *,
        entity: str | None = None,
        model: str | None = None,
        version: str | int | None = None,
        workload_type: str | None = None,
        workload_size: str | None = None,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        scale_to_zero: bool | None = None,
        traffic: Mapping[str, int] | None = None,
        config: Mapping | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Change one served entity (`entity`, optional when there is only one) and/or the traffic,
        or replace the whole core `config`. Refused while another update runs.

        Changing the version of an entity that has its default name (`iris-1`) renames it to the new
        default (`iris-2`) and moves its traffic along.
        """
        status = self.get(name)
        self._not_updating(status, "update it")
        self._not_stopped(status, "updated")
        if config is not None:
            core = configs.update_core_config(config)
            if traffic:
                core["traffic_config"] = routes_to_traffic_config(dict(traffic))
        else:
            changes = {k: v for k, v in dict(
                model=model, version=version, workload_type=workload_type, workload_size=workload_size,
                min_concurrency=min_concurrency, max_concurrency=max_concurrency,
                scale_to_zero=scale_to_zero).items() if v is not None}
            core = self._changed_config(status, entity, changes, traffic)
        check_config(core, self.cloud)
        self._send_config(name, core)
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress)

    def set_traffic(
        self,
        name: str,
        routes: Mapping[str, int],
        *,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Split traffic between the served entities: {"iris-1": 80, "iris-2": 20}. Validated before
        sending (names exist, integers 0-100, sum 100)."""
        status = self.get(name)
        if not isinstance(routes, Mapping) or not routes:
            raise InvalidInputError("No traffic split given", "e.g. {'iris-1': 80, 'iris-2': 20}.")
        try:
            rules.normalize_routes(routes_to_traffic_config(dict(routes)), status.entity_names)
        except rules.RuleViolation as err:
            raise rule_error(err) from None
        self._not_updating(status, "change its traffic")
        self._not_stopped(status, "re-routed")
        fields = entity_input_fields()
        core = {"served_entities": [configs.input_entity(e, fields) for e in status.entities],
                "traffic_config": routes_to_traffic_config(dict(routes))}
        check_config(core, self.cloud)
        self._send_config(name, core)
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress)
