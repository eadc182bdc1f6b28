"""Querying an endpoint: the request sent exactly once (throttling surfaces at once), the per-query
HTTP timeout, and failures explained from the endpoint's state (stopped, not ready, bad input)."""
from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from typing import Any

from jupyter_serving.client.base import ClientBase, endpoint_not_found, wait_hint
from jupyter_serving.client.checks import check_endpoint_name, check_entity_name
from jupyter_serving.client.errors import from_sdk_error, server_message
from jupyter_serving.core.errors import (
    BackendError,
    Hint,
    InvalidInputError,
    NotFoundError,
    QueryError,
    ServingError,
    ServingTimeoutError,
    ThrottledError,
    one_line,
)
from jupyter_serving.core.query_body import Body, body_from_value, parse_body, request_bytes
from jupyter_serving.core.results import QueryResult, make_result
from jupyter_serving.core.status import EndpointStatus


class OneShotBody(io.RawIOBase):
    """A request body that databricks-sdk sends exactly once.

    The SDK retries a request with a JSON body or a seekable stream (HTTP 429 and 503 for up to
    `retry_timeout_seconds`, five minutes by default). A query must surface throttling at once, and
    `_BaseClient.do` disables retries for non-seekable streams; `__len__` and `tell` let requests
    send a Content-Length instead of chunked encoding.
    """

    def __init__(self, payload: bytes):
        super().__init__()
        self._buf = io.BytesIO(payload)
        self._len = len(payload)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._buf.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self) -> int:  # requests computes Content-Length as len() - tell()
        return self._buf.tell()

    def __len__(self) -> int:
        return self._len


def _as_body(body: Any, namespace: Mapping[str, Any] | None) -> Body:
    if isinstance(body, Body):
        return body
    if isinstance(body, str):
        return parse_body(body, namespace)
    return body_from_value(body)


class QueryMixin(ClientBase):
    _query_clients: dict[float, Any]
    _lock: threading.Lock

    def _query_api(self, timeout: float):
        """An ApiClient whose HTTP timeout is `timeout` (databricks-sdk sets it per client)."""
        from databricks.sdk.core import ApiClient

        key = round(float(timeout), 3)
        with self._lock:
            client = self._query_clients.get(key)
            if client is None:
                cfg = self.workspace.config.copy()
                inner = getattr(cfg, "_inner", None)
                if isinstance(inner, dict):
                    cfg._inner = dict(inner)  # Config.copy() shares attribute storage
                    cfg.http_timeout_seconds = key
                    client = ApiClient(cfg)
                else:  # pragma: no cover - other SDK versions: the workspace-wide timeout applies
                    client = self._api
                self._query_clients[key] = client
            return client

    def query(
        self,
        name: str,
        body: Any,
        *,
        entity: str | None = None,
        timeout: float | None = None,
        namespace: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Query the endpoint (or one served entity, ignoring the traffic split).

        `body`: a DataFrame, a dict in any Databricks format (dataframe_split/records, instances,
        inputs, params, messages, prompt, input), a list of records, or text (JSON, CSV with a
        header, `$var` looked up in `namespace`). Sent once: throttling (429) surfaces at once.
        """
        check_endpoint_name(name)
        if entity is not None:
            check_entity_name(entity)
        parsed = _as_body(body, namespace)
        timeout = float(timeout if timeout is not None else self.query_timeout)
        if timeout <= 0:
            raise InvalidInputError(f"Timeout must be positive, got {timeout:g}",
                                    Hint(python="e.g. timeout=30.", magic="e.g. --timeout 30."))
        payload = request_bytes(parsed.request)
        path = (f"/serving-endpoints/{name}/served-models/{entity}/invocations" if entity
                else f"/serving-endpoints/{name}/invocations")
        api = self._query_api(timeout)
        start = time.perf_counter()
        try:
            response = api.do("POST", path, headers=self._headers(True), data=OneShotBody(payload),
                              response_headers=["served-model-name"])
        except ValueError as err:  # a 2xx answer that is not JSON
            raise BackendError(f"Endpoint '{name}' answered something that is not JSON ({one_line(err)[:120]})",
                               Hint(python=f"The model must return JSON; see `client.logs('{name}')`.",
                                    magic=f"The model must return JSON; see `%serve logs {name}`.")) from None
        except Exception as err:  # noqa: BLE001
            raise self._query_error(err, name, entity, timeout) from None
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not isinstance(response, dict):
            response = {"predictions": response}
        served = response.pop("served-model-name", None) or entity
        return make_result(name, response, parsed.request, parsed.frame, latency_ms, served, entity)

    def _query_error(self, err: BaseException, name: str, entity: str | None, timeout: float) -> ServingError:
        import requests

        if isinstance(err, requests.Timeout) and not isinstance(err, requests.ConnectTimeout):
            slow = "The model may be slow or scaling up from zero; retry, or raise the timeout"
            return ServingTimeoutError(f"Query to '{name}' got no answer within {timeout:g} s",
                                       Hint(python=f"{slow} (timeout=S).", magic=f"{slow} (--timeout S)."))
        mapped = from_sdk_error(err, what=f"Query to '{name}'", host=self.host)
        if isinstance(mapped, ThrottledError):
            e = entity or "E"
            return ThrottledError(
                f"Endpoint '{name}' is throttling queries (HTTP 429: {server_message(err)})", Hint(
                    python="Too many concurrent requests for its served entity: retry later, or raise its concurrency "
                           f"(`client.update_config('{name}', entity='{e}', workload_size='Medium')`).",
                    magic="Too many concurrent requests for its served entity: retry later, or raise its concurrency "
                          f"(`%serve update {name} --entity {e} --workload-size Medium`)."),
                error_code=mapped.error_code)
        if not isinstance(mapped, (InvalidInputError, NotFoundError, QueryError, BackendError)):
            return mapped
        try:
            status = self.get(name)  # type: ignore[attr-defined]
        except NotFoundError:
            return endpoint_not_found(name)
        except ServingError:
            return mapped
        return self._refusal(status, mapped, entity, server_message(err))

    @staticmethod
    def _refusal(status: EndpointStatus, mapped: ServingError, entity: str | None, server: str) -> ServingError:
        """Why the endpoint refused a query, as its state tells it (else the mapped error)."""
        name, code = status.name, mapped.error_code
        if entity is not None and entity not in status.entity_names:
            return NotFoundError(f"Endpoint '{name}' has no served entity '{entity}' "
                                 f"(served entities: {', '.join(status.entity_names) or 'none'})",
                                 Hint(python="Use one of those names as entity=.",
                                      magic="Use one of those names with --entity."))
        if status.is_stopped:
            return QueryError(f"Endpoint '{name}' is stopped and refuses queries",
                              Hint(python=f"Start it with `client.start('{name}')`.",
                                   magic=f"Start it with `%serve start {name}`."), error_code=code)
        if not status.is_ready:
            return QueryError(f"Endpoint '{name}' is not ready ({status.state}): {server}",
                              wait_hint("Wait for it with {how}.", name), error_code=code)
        if isinstance(mapped, InvalidInputError):
            from jupyter_serving.core.query_body import missing_columns

            missing = missing_columns(server)
            if missing:  # one line first; MLflow's dump (its useful part last) after it
                return QueryError(f"{missing}. Endpoint '{name}' refused the input: {server}", Hint(
                    python=f"Check the expected input with `client.request_template('{name}')`.",
                    magic=f"Check the expected input with `%serve schema {name}`."), error_code=code)
            return QueryError(f"Endpoint '{name}' refused the input: {server}",
                              Hint(python=f"Check the expected input with `client.request_template('{name}')`.",
                                   magic=f"Check the expected input with `%serve schema {name}`."), error_code=code)
        return mapped
