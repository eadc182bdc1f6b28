"""One-line canaries: add a served entity to an endpoint's config, or remove one, the others
unchanged. Traffic is checked by the same `core.rules` as every other config change."""
from __future__ import annotations

from collections.abc import Mapping

from jupyter_serving.client.base import DEFAULT_WAIT_TIMEOUT, ProgressCallback
from jupyter_serving.client.checks import check_config, check_entity_name
from jupyter_serving.client.deploy import DeployMixin
from jupyter_serving.client.sdk_compat import entity_input_fields
from jupyter_serving.core import configs, rules, traffic_split
from jupyter_serving.core.arguments import routes_to_traffic_config
from jupyter_serving.core.errors import Hint, InvalidInputError, NotFoundError
from jupyter_serving.core.status import EndpointStatus


class EntitiesMixin(DeployMixin):
    def add_entity(
        self,
        name: str,
        model: str,
        version: str | int | None = None,
        *,
        entity_name: str | None = None,
        workload_type: str | None = None,
        workload_size: str | None = None,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        scale_to_zero: bool = False,
        traffic: Mapping[str, int] | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Serve `model` (version `version`, default its latest) beside the endpoint's entities.

        The other entities and their traffic are unchanged; the new one gets 0 % unless `traffic`
        gives the whole new split, e.g. {"iris-1": 90, "iris-2": 10}.
        """
        status = self.get(name)
        self._not_updating(status, "add a served entity")
        self._not_stopped(status, "changed")
        if version in (None, ""):
            try:
                version = self.latest_version(model)
            except NotFoundError as err:
                raise self._registered_elsewhere([(model, None)]) or err from None
        new = rules.served_entity(model, version, name=entity_name, workload_type=workload_type,
                                  workload_size=workload_size, min_concurrency=min_concurrency,
                                  max_concurrency=max_concurrency, scale_to_zero=scale_to_zero)
        new.setdefault("name", rules.default_entity_name(model, version))
        if entity_name is not None:
            check_entity_name(entity_name)
        if new["name"] in status.entity_names:
            raise InvalidInputError(f"Endpoint '{name}' already serves an entity named '{new['name']}'", Hint(
                python="Name the new one with entity_name='E' (or change that one with `client.update_config`).",
                magic=f"Name the new one with --entity-name E (or change that one with `%serve update {name} "
                      f"--entity {new['name']} ...`)."))
        fields = entity_input_fields()
        entities = [configs.input_entity(e, fields) for e in status.entities] + [new]
        routes = dict(traffic) if traffic else {**(status.traffic or {e: 100 for e in status.entity_names}),
                                                new["name"]: 0}
        return self._send_entities(name, entities, routes, wait=wait, timeout=timeout, on_progress=on_progress,
                                   models=[(model, str(version))])

    def remove_entity(
        self,
        name: str,
        entity: str,
        *,
        traffic: Mapping[str, int] | None = None,
        wait: bool = True,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
    ) -> EndpointStatus:
        """Stop serving `entity`, the others unchanged. Its traffic goes to the others in proportion
        to theirs; when that is ambiguous (they all have 0 %), `traffic` must give the new split."""
        check_entity_name(entity)
        status = self.get(name)
        self._not_updating(status, "remove a served entity")
        self._not_stopped(status, "changed")
        self._pick_entity(status, entity)
        if len(status.entity_names) == 1:
            raise InvalidInputError(f"'{entity}' is the only served entity of endpoint '{name}'", Hint(
                python=f"An endpoint serves at least one entity: add another first, or `client.delete('{name}')`.",
                magic=f"An endpoint serves at least one entity: add another first (`%serve add {name} --model M "
                      f"--version V`), or `%serve delete {name} --yes`."))
        fields = entity_input_fields()
        entities = [configs.input_entity(e, fields) for e in status.entities if e.get("name") != entity]
        routes = dict(traffic) if traffic else traffic_split.without(status.traffic, entity)
        if routes is None:
            rest = [e.get("name") for e in entities]
            example = " ".join(f"{e}={v}" for e, v in zip(rest, traffic_split.even_split(len(rest))))
            raise InvalidInputError(
                f"Removing '{entity}' leaves {', '.join(rest)} all at 0 % traffic; say how to split it", Hint(
                    python=f"Give traffic=, e.g. {dict(zip(rest, traffic_split.even_split(len(rest))))}.",
                    magic=f"Give --traffic, e.g. --traffic {example}."))
        return self._send_entities(name, entities, routes, wait=wait, timeout=timeout, on_progress=on_progress)

    def _send_entities(self, name: str, entities: list[dict], routes: dict[str, int], *, wait: bool,
                       timeout: float, on_progress: ProgressCallback | None,
                       models: list[tuple[str | None, str | None]] | None = None) -> EndpointStatus:
        core: dict = {"served_entities": entities}
        if routes:
            core["traffic_config"] = routes_to_traffic_config(routes)
        check_config(core, self.cloud)
        try:
            self._send_config(name, core)
        except NotFoundError as err:
            raise self._registered_elsewhere(models or []) or err from None
        return self._settle(name, wait, timeout=timeout, on_progress=on_progress)
