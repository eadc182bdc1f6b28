"""What an endpoint recorded: `payloads()` (its AI Gateway inference table), `usage()` and
`usage_summary()` (usage tracking), and `metrics()` (its Prometheus metrics, parsed).

Locally the records come from two routes of the local backend beside the endpoint's own
(`GET .../inference-table`, `GET .../usage`). On Databricks they are Unity Catalog tables
(`{catalog}.{schema}.{prefix}_payload`, `system.serving.endpoint_usage`) read with the SQL Statement
Execution API on a SQL warehouse: `warehouse_id=`, else the first running warehouse `warehouses.list()`
finds.
"""
from __future__ import annotations

import time
from typing import Any

from jupyter_serving.client.base import ClientBase
from jupyter_serving.client.checks import check_endpoint_name
from jupyter_serving.core.errors import BackendError, Hint, InvalidInputError, QueryError, ServingTimeoutError
from jupyter_serving.core.metrics import MetricsSnapshot
from jupyter_serving.core.records import (
    newest,
    parse_since,
    payload_frame,
    payload_statement,
    payload_table,
    rows_of_statement,
    summarize_usage,
    usage_frame,
    usage_statement,
)

MAX_LOCAL_ROWS = 10_000  # what the local routes answer at most
SQL_TIMEOUT_S = 300.0
SQL_POLL_S = 1.0  # between two reads of a statement still running


def _gateway_hint(name: str, what: str) -> Hint:
    flag = "--usage-tracking" if what == "usage" else "--inference-table CATALOG.SCHEMA.PREFIX"
    kwarg = "usage_tracking=True" if what == "usage" else "inference_table='catalog.schema.prefix'"
    return Hint(python=f"Enable it with `client.set_ai_gateway('{name}', {kwarg})`, then query the endpoint.",
                magic=f"Enable it with `%serve gateway {name} {flag}`, then query the endpoint.")


def _state(resp: Any) -> str:
    state = getattr(getattr(resp, "status", None), "state", None)
    return str(getattr(state, "value", state) or "")


class RecordsMixin(ClientBase):
    # -- the AI Gateway's records ------------------------------------------------------------------
    def payloads(self, name: str, since: Any = None, limit: int = 100, *, warehouse_id: str | None = None):
        """The newest `limit` rows of the endpoint's inference table (from `since` on), oldest first, as a
        DataFrame: request and response parsed from JSON (for chat models also their text), status,
        latency, served entity, client_request_id. `since`: "10m", "2h", an ISO time, epoch ms, a datetime."""
        check_endpoint_name(name)
        limit = self._limit(limit)
        since_ms = parse_since(since, int(time.time() * 1000))
        if self.is_local:
            answer = self._records(name, "inference-table", since_ms)
            if answer.get("table") is None:
                raise InvalidInputError(f"Endpoint '{name}' has no inference table", _gateway_hint(name, "payloads"))
            return payload_frame(newest(answer.get("rows") or [], limit))
        gateway = self.get(name).raw.get("ai_gateway") or {}  # type: ignore[attr-defined]
        table = payload_table(gateway.get("inference_table_config"), name)
        if table is None:
            raise InvalidInputError(f"Endpoint '{name}' has no inference table", _gateway_hint(name, "payloads"))
        sql, params = payload_statement(table, since_ms, limit)
        rows = self._sql_rows(warehouse_id, sql, params, what=f"Reading the inference table {table}")
        return payload_frame(list(reversed(rows)))

    def usage(self, name: str, since: Any = None, *, limit: int = MAX_LOCAL_ROWS, warehouse_id: str | None = None):
        """The endpoint's usage-tracking rows (from `since` on, the newest `limit`), oldest first: requester,
        served entity, status, input and output tokens, streaming, latency. See `usage_summary` for totals."""
        check_endpoint_name(name)
        limit = self._limit(limit)
        since_ms = parse_since(since, int(time.time() * 1000))
        if self.is_local:
            rows = newest(self._records(name, "usage", since_ms).get("rows") or [], limit)
        else:
            sql, params = usage_statement(name, since_ms, limit)
            rows = list(reversed(self._sql_rows(warehouse_id, sql, params,
                                                what="Reading system.serving.endpoint_usage")))
        if not rows:
            self._check_tracking(name)
        return usage_frame(rows)

    def usage_summary(self, name: str, since: Any = None, *, warehouse_id: str | None = None):
        """Requests, errors and tokens per requester and served entity (most tokens first)."""
        return summarize_usage(self.usage(name, since, warehouse_id=warehouse_id))

    def _check_tracking(self, name: str) -> None:
        """No usage rows: say so when usage tracking is off (else there simply were no requests)."""
        gateway = self.get(name).raw.get("ai_gateway") or {}  # type: ignore[attr-defined]
        if not (gateway.get("usage_tracking_config") or {}).get("enabled"):
            raise InvalidInputError(f"Endpoint '{name}' does not track usage", _gateway_hint(name, "usage"))

    @staticmethod
    def _limit(limit: Any) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LOCAL_ROWS:
            raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_LOCAL_ROWS}, got {limit!r}",
                                    Hint(python="e.g. limit=100.", magic="e.g. --limit 100."))
        return limit

    def _records(self, name: str, route: str, since_ms: int | None) -> dict:
        query: dict[str, Any] = {"limit": MAX_LOCAL_ROWS}
        if since_ms is not None:
            query["since_ms"] = max(since_ms, 0)
        path = f"/api/2.0/serving-endpoints/{name}/{route}"
        return self._endpoint_call(name, lambda: self._api.do("GET", path, query=query, headers=self._headers()),
                                   what=f"Reading the records of endpoint '{name}'") or {}

    # -- Databricks SQL ----------------------------------------------------------------------------
    def _warehouse(self, warehouse_id: str | None) -> str:
        if warehouse_id:
            return warehouse_id
        found = self._call(lambda: list(self.workspace.warehouses.list()), what="Listing SQL warehouses")
        running = [w for w in found if str(getattr(w.state, "value", w.state)) == "RUNNING"]
        chosen = running or found
        if not chosen:
            raise InvalidInputError("No SQL warehouse to read the records with",
                                    "Create one (SQL > SQL Warehouses) or pass warehouse_id='...'.")
        return chosen[0].id

    def _sql_rows(self, warehouse_id: str | None, sql: str, params: list[dict], *, what: str) -> list[dict]:
        """The rows a statement returns, run on a SQL warehouse (waiting for it, every result chunk read)."""
        from databricks.sdk.service.sql import (
            Disposition,
            ExecuteStatementRequestOnWaitTimeout,
            Format,
            StatementParameterListItem,
        )

        warehouse = self._warehouse(warehouse_id)
        api = self.workspace.statement_execution
        resp = self._call(lambda: api.execute_statement(
            statement=sql, warehouse_id=warehouse, wait_timeout="30s", disposition=Disposition.INLINE,
            format=Format.JSON_ARRAY, on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CONTINUE,
            parameters=[StatementParameterListItem(**p) for p in params]), what=what)
        resp = self._until_done(resp, what)
        columns = [(c.name, getattr(c.type_name, "value", c.type_name)) for c in resp.manifest.schema.columns or []]
        data = list((resp.result.data_array if resp.result else None) or [])
        chunk = resp.result.next_chunk_index if resp.result else None
        while chunk is not None:
            part = self._call(lambda i=chunk: api.get_statement_result_chunk_n(resp.statement_id, i), what=what)
            data.extend(part.data_array or [])
            chunk = part.next_chunk_index
        return rows_of_statement(columns, data)

    def _until_done(self, resp: Any, what: str) -> Any:
        deadline = time.monotonic() + SQL_TIMEOUT_S
        while _state(resp) in ("PENDING", "RUNNING"):
            if time.monotonic() > deadline:
                raise ServingTimeoutError(f"{what}: the statement did not finish within {SQL_TIMEOUT_S:g} s",
                                          "The SQL warehouse may be starting; try again in a minute.")
            time.sleep(SQL_POLL_S)
            resp = self._call(lambda sid=resp.statement_id: self.workspace.statement_execution.get_statement(sid),
                              what=what)
        if _state(resp) != "SUCCEEDED":
            error = getattr(resp.status, "error", None)
            message = getattr(error, "message", None) or _state(resp) or "no result"
            raise QueryError(f"{what} failed: {message}",
                             "Check that the table exists and that you may SELECT from it (Unity Catalog grants).")
        if resp.manifest is None or resp.manifest.schema is None:
            raise BackendError(f"{what}: the statement returned no result schema", "Try again.")
        return resp

    # -- metrics -------------------------------------------------------------------------------------
    def metrics(self, name: str) -> MetricsSnapshot:
        """The endpoint's Prometheus metrics now (`export_metrics`), parsed: `.total(metric)`,
        `.buckets()`, `.frame()`; `core.metrics.window(before, after)` gives rates between two reads."""
        check_endpoint_name(name)

        def read() -> str:
            contents = self.workspace.serving_endpoints.export_metrics(name).contents
            raw = contents.read() if hasattr(contents, "read") else contents
            return raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw or "")

        text = self._endpoint_call(name, read, what=f"Reading the metrics of endpoint '{name}'")
        return MetricsSnapshot.parse(name, text, time.time())


__all__ = ["RecordsMixin"]
