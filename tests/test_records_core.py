"""Fast tier: the AI Gateway's records as DataFrames (`core.records`), the Databricks SQL path of
`payloads` / `usage` against a fake workspace (statement execution and warehouses), Prometheus metrics
(`core.metrics`), and the live metrics watch with a fake client."""
from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from jupyter_serving.core.errors import InvalidInputError, NotFoundError, QueryError, ServingError
from jupyter_serving.core.metrics import MetricsSnapshot, histogram_quantile, parse_prometheus, window
from jupyter_serving.core.records import (
    parse_since,
    payload_frame,
    payload_statement,
    payload_table,
    rows_of_statement,
    summarize_usage,
    usage_frame,
    usage_statement,
)

NOW = 1_700_000_000_000


# -- since -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("10m", NOW - 600_000), ("2h", NOW - 7_200_000), ("1.5s", NOW - 1500),
    ("3d", NOW - 3 * 86_400_000), ("250ms", NOW - 250), ("1699999999000", 1_699_999_999_000), (5, 5),
    ("2023-11-14T22:13:20", NOW), ("2023-11-14T22:13:20Z", NOW), ("2023-11-14T23:13:20+01:00", NOW),
    (dt.timedelta(minutes=1), NOW - 60_000), (dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc), NOW),
])
def test_parse_since(value, expected):
    assert parse_since(value, NOW) == expected


@pytest.mark.parametrize("value", ["soon", "10 parsecs", True])
def test_parse_since_errors(value):
    with pytest.raises(InvalidInputError) as err:
        parse_since(value, NOW)
    assert "--since 10m" in err.value.one_line("magic")


# -- frames ------------------------------------------------------------------------------------------

LOCAL_PAYLOADS = [
    {"databricks_request_id": "d1", "client_request_id": "c1", "request_date": "2023-11-14",
     "request_time": "2023-11-14T22:13:20.100Z", "status_code": 200, "execution_duration_ms": 12,
     "request": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
     "response": json.dumps({"choices": [{"message": {"role": "assistant", "content": "hello"}}]}),
     "logging_error_codes": [], "served_entity_id": "id1", "requester": "me", "served_entity_name": "e1",
     "timestamp_ms": NOW},
    {"databricks_request_id": "d2", "client_request_id": None, "request_date": "2023-11-14",
     "request_time": "2023-11-14T22:13:21Z", "status_code": 200, "execution_duration_ms": 30,
     "request": json.dumps({"messages": [{"role": "user", "content": "go"}], "stream": True}),
     "response": json.dumps({"chunks": [{"choices": [{"delta": {"content": "a "}}]},
                                        {"choices": [{"delta": {"content": "b"}}]}], "truncated": False}),
     "logging_error_codes": [], "served_entity_id": "id1", "requester": "me", "served_entity_name": "e1",
     "timestamp_ms": NOW + 900},
]


def test_payload_frame():
    frame = payload_frame(LOCAL_PAYLOADS)
    assert list(frame.columns[:4]) == ["request_time", "status_code", "execution_duration_ms", "served_entity_name"]
    assert "timestamp_ms" not in frame.columns and "request_date" not in frame.columns
    assert frame["request_time"].dt.tz is not None
    assert frame.loc[0, "request"]["messages"][0]["content"] == "hi"
    assert list(frame["request_text"]) == ["hi", "go"] and list(frame["response_text"]) == ["hello", "a b"]
    tabular = payload_frame([{"request": '{"dataframe_records": [{"x": 1}]}', "response": '{"predictions": [2]}',
                              "served_entity_id": "id9", "request_time": "2023-11-14T22:13:20Z"}])
    assert tabular.loc[0, "response"] == {"predictions": [2]} and "request_text" not in tabular.columns
    assert tabular.loc[0, "served_entity_name"] == "id9"
    assert list(payload_frame([]).columns[:2]) == ["request_time", "status_code"]


def test_usage_frame_and_summary():
    rows = [{"requester": "a", "served_entity_name": "e1", "status_code": 200, "input_token_count": 3,
             "output_token_count": 5, "timestamp_ms": NOW, "request_time": "2023-11-14T22:13:20Z"},
            {"requester": "a", "served_entity_name": "e1", "status_code": 429, "input_token_count": 0,
             "output_token_count": 0, "timestamp_ms": NOW + 1, "request_time": "2023-11-14T22:13:21Z"},
            {"requester": "b", "served_entity_name": "e2", "status_code": 200, "input_token_count": 10,
             "output_token_count": 20, "timestamp_ms": NOW + 2, "request_time": "2023-11-14T22:13:22Z"}]
    frame = usage_frame(rows)
    assert list(frame.columns[:3]) == ["request_time", "requester", "served_entity_name"]
    summary = summarize_usage(frame)
    assert summary[["requester", "served_entity_name", "requests", "errors", "input_tokens", "output_tokens",
                    "total_tokens"]].values.tolist() == [["b", "e2", 1, 0, 10, 20, 30], ["a", "e1", 2, 1, 3, 5, 8]]
    assert summary.loc[1, "last"] > summary.loc[1, "first"]
    assert summarize_usage(usage_frame([])).empty


# -- SQL ---------------------------------------------------------------------------------------------


def test_statements_and_rows():
    table = payload_table({"enabled": True, "catalog_name": "main", "schema_name": "nb", "table_name_prefix": "x"},
                          "ep")
    assert table == "`main`.`nb`.`x_payload`"
    assert payload_table({"enabled": True, "catalog_name": "c", "schema_name": "s"}, "my-ep") == "`c`.`s`.`my-ep_payload`"
    assert payload_table({"enabled": False}, "ep") is None and payload_table(None, "ep") is None
    sql, params = payload_statement(table, NOW, 50)
    assert sql == f"SELECT * FROM {table} WHERE TRUE AND request_time >= :since ORDER BY request_time DESC LIMIT 50"
    assert params == [{"name": "since", "value": "2023-11-14T22:13:20+00:00", "type": "TIMESTAMP"}]
    sql, params = usage_statement("ep", None, 10)
    assert "system.serving.endpoint_usage" in sql and "endpoint_name = :endpoint" in sql and sql.endswith("LIMIT 10")
    assert params == [{"name": "endpoint", "value": "ep", "type": "STRING"}]
    rows = rows_of_statement([("n", "INT"), ("x", "DOUBLE"), ("ok", "BOOLEAN"), ("codes", "ARRAY"), ("s", "STRING")],
                             [["3", "1.5", "true", '["A"]', "t"], [None, None, "false", None, None]])
    assert rows == [{"n": 3, "x": 1.5, "ok": True, "codes": ["A"], "s": "t"},
                    {"n": None, "x": None, "ok": False, "codes": None, "s": None}]


class FakeStatements:
    """`w.statement_execution`: a statement PENDING once, then SUCCEEDED with its rows in two chunks."""

    def __init__(self, columns, rows, state="SUCCEEDED"):
        from databricks.sdk.service import sql

        self.sql, self.columns, self.rows, self.state = sql, columns, rows, state
        self.executed: list[dict] = []

    def execute_statement(self, **kwargs):
        self.executed.append(kwargs)
        return self.sql.StatementResponse.from_dict({"statement_id": "s1", "status": {"state": "PENDING"}})

    def get_statement(self, statement_id):
        body = {"statement_id": statement_id, "status": {"state": self.state}}
        if self.state != "SUCCEEDED":
            body["status"]["error"] = {"message": "TABLE_OR_VIEW_NOT_FOUND: `main`.`nb`.`x_payload`"}
            return self.sql.StatementResponse.from_dict(body)
        body["manifest"] = {"format": "JSON_ARRAY", "schema": {"columns": [
            {"name": n, "type_name": t, "position": i} for i, (n, t) in enumerate(self.columns)]}}
        body["result"] = {"chunk_index": 0, "data_array": self.rows[:1], "next_chunk_index": 1}
        return self.sql.StatementResponse.from_dict(body)

    def get_statement_result_chunk_n(self, statement_id, chunk_index):
        return self.sql.ResultData.from_dict({"chunk_index": chunk_index, "data_array": self.rows[1:]})


def _workspace(statements, warehouses=("STOPPED:w1", "RUNNING:w2"), gateway=None):
    from databricks.sdk.service import sql

    endpoint = {"name": "ep", "state": {"ready": "READY"}, "ai_gateway": gateway if gateway is not None else {
        "usage_tracking_config": {"enabled": True},
        "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "nb",
                                   "table_name_prefix": "x"}}}
    listed = [sql.EndpointInfo.from_dict({"id": w.split(":")[1], "state": w.split(":")[0]}) for w in warehouses]
    return SimpleNamespace(
        config=SimpleNamespace(host="https://dbc.example.com", workspace_id=None, is_azure=False, is_gcp=False),
        api_client=SimpleNamespace(do=lambda method, path, **kw: dict(endpoint)),
        statement_execution=statements, warehouses=SimpleNamespace(list=lambda: iter(listed)))


@pytest.fixture()
def databricks_client(monkeypatch):
    from jupyter_serving.client import records
    from jupyter_serving.client.service import ServingClient

    monkeypatch.setattr(records, "SQL_POLL_S", 0.0)
    return lambda statements, **kw: ServingClient(_workspace(statements, **kw), is_local=False)


PAYLOAD_COLUMNS_SQL = [("databricks_request_id", "STRING"), ("client_request_id", "STRING"),
                       ("request_time", "TIMESTAMP"), ("status_code", "INT"), ("execution_duration_ms", "LONG"),
                       ("request", "STRING"), ("response", "STRING"), ("served_entity_id", "STRING"),
                       ("logging_error_codes", "ARRAY"), ("requester", "STRING")]


def test_payloads_through_sql_on_databricks(databricks_client):
    rows = [["d2", "c2", "2024-05-01T12:00:02Z", "200", "15", '{"messages": [{"role": "user", "content": "b"}]}',
             '{"choices": [{"message": {"content": "B"}}]}', "sid", "[]", "me"],
            ["d1", "c1", "2024-05-01T12:00:01Z", "429", "1", '{"messages": [{"role": "user", "content": "a"}]}',
             '{"error_code": "REQUEST_LIMIT_EXCEEDED"}', "sid", '["RATE_LIMITED"]', "me"]]
    statements = FakeStatements(PAYLOAD_COLUMNS_SQL, rows)
    frame = databricks_client(statements).payloads("ep", since="2024-05-01T12:00:00", limit=2)
    (sent,) = statements.executed
    assert sent["warehouse_id"] == "w2"  # the running warehouse
    assert sent["statement"].startswith("SELECT * FROM `main`.`nb`.`x_payload` WHERE TRUE AND request_time >= :since")
    assert sent["statement"].endswith("LIMIT 2")
    assert [(p.name, p.value, p.type) for p in sent["parameters"]] == [("since", "2024-05-01T12:00:00+00:00",
                                                                        "TIMESTAMP")]
    assert list(frame["client_request_id"]) == ["c1", "c2"]  # oldest first
    assert list(frame["status_code"]) == [429, 200] and frame.loc[0, "logging_error_codes"] == ["RATE_LIMITED"]
    assert list(frame["response_text"]) == ["", "B"] and list(frame["served_entity_name"]) == ["sid", "sid"]


def test_usage_through_sql_and_its_summary(databricks_client):
    columns = [("requester", "STRING"), ("request_time", "TIMESTAMP"), ("status_code", "INT"),
               ("input_token_count", "LONG"), ("output_token_count", "LONG"), ("served_entity_id", "STRING"),
               ("served_entity_name", "STRING")]
    rows = [["me", "2024-05-01T12:00:02Z", "200", "4", "6", "sid", "e1"],
            ["me", "2024-05-01T12:00:01Z", "200", "1", "2", "sid", "e1"]]
    statements = FakeStatements(columns, rows)
    summary = databricks_client(statements).usage_summary("ep", warehouse_id="given")
    assert statements.executed[0]["warehouse_id"] == "given"
    assert summary[["requester", "served_entity_name", "requests", "input_tokens", "output_tokens"]].values.tolist() \
        == [["me", "e1", 2, 5, 8]]


def test_sql_path_errors_are_one_line(databricks_client):
    failed = FakeStatements(PAYLOAD_COLUMNS_SQL, [], state="FAILED")
    with pytest.raises(QueryError, match="Reading the inference table `main`.`nb`.`x_payload` failed: "
                                         "TABLE_OR_VIEW_NOT_FOUND"):
        databricks_client(failed).payloads("ep")
    with pytest.raises(InvalidInputError, match="No SQL warehouse to read the records with"):
        databricks_client(FakeStatements([], []), warehouses=()).payloads("ep")
    with pytest.raises(InvalidInputError) as err:
        databricks_client(FakeStatements([], []), gateway={}).payloads("ep")
    assert err.value.one_line("magic") == ("Endpoint 'ep' has no inference table. Enable it with "
                                           "`%serve gateway ep --inference-table CATALOG.SCHEMA.PREFIX`, then query "
                                           "the endpoint.")
    with pytest.raises(InvalidInputError, match="does not track usage"):
        databricks_client(FakeStatements([("requester", "STRING")], []), gateway={}).usage("ep")
    with pytest.raises(InvalidInputError, match="limit must be a whole number"):
        databricks_client(FakeStatements([], [])).payloads("ep", limit=0)


# -- metrics -----------------------------------------------------------------------------------------

METRICS = """# HELP request_count_total Requests answered
# TYPE request_count_total counter
request_count_total{served_entity_name="a"} 10.0
request_count_total{served_entity_name="b"} 2.0
# TYPE request_count_created gauge
request_count_created{served_entity_name="a"} 1.7e+09
# TYPE request_4xx_count_total counter
request_4xx_count_total{served_entity_name="a",status="429"} 3.0
# TYPE request_latency_ms histogram
request_latency_ms_bucket{le="10.0",served_entity_name="a"} 4.0
request_latency_ms_bucket{le="100.0",served_entity_name="a"} 10.0
request_latency_ms_bucket{le="+Inf",served_entity_name="a"} 10.0
request_latency_ms_bucket{le="10.0",served_entity_name="b"} 2.0
request_latency_ms_bucket{le="100.0",served_entity_name="b"} 2.0
request_latency_ms_bucket{le="+Inf",served_entity_name="b"} 2.0
request_latency_ms_count{served_entity_name="a"} 10.0
in_flight_requests{served_entity_name="a"} 1.0
odd_metric{path="a \\"b\\" \\\\ c\\nd"} NaN 1700000000000
not a sample line
"""


def test_parse_prometheus():
    samples, types = parse_prometheus(METRICS)
    assert types["request_latency_ms"] == "histogram" and types["request_count_total"] == "counter"
    odd = [s for s in samples if s.name == "odd_metric"][0]
    assert odd.labels == {"path": 'a "b" \\ c\nd'} and math.isnan(odd.value)
    snap = MetricsSnapshot.parse("ep", METRICS, 100.0)
    assert snap.entities() == ["a", "b"] and snap.total("request_count_total") == 12.0
    assert snap.total("request_count_total", "b") == 2.0
    assert snap.buckets() == [(10.0, 6.0), (100.0, 12.0), (math.inf, 12.0)]
    summary = snap.summary()
    assert summary.loc[0, ["served_entity_name", "requests", "4xx", "in_flight"]].tolist() == ["a", 10.0, 3.0, 1.0]
    assert summary.loc[0, "p50_ms"] == pytest.approx(10 + 90 * (5 - 4) / 6)
    assert set(snap.frame().columns) == {"metric", "served_entity_name", "labels", "value"}


def test_parse_what_prometheus_client_writes():
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    hist = prometheus_client.Histogram("request_latency_ms", "x", ["served_entity_name"], buckets=(1, 10, 100),
                                       registry=registry)
    for value in (5, 50, 50, 500):
        hist.labels("e").observe(value)
    snap = MetricsSnapshot.parse("ep", prometheus_client.generate_latest(registry).decode(), 0.0)
    assert snap.buckets() == [(1.0, 0.0), (10.0, 1.0), (100.0, 3.0), (math.inf, 4.0)]


def test_histogram_quantile():
    buckets = [(10.0, 5.0), (20.0, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == 10.0
    assert histogram_quantile(0.75, buckets) == 15.0
    assert histogram_quantile(0.99, [(10.0, 0.0), (math.inf, 4.0)]) == 10.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(10.0, 0.0), (math.inf, 0.0)]) is None and histogram_quantile(0.5, []) is None


def test_window_rates_latency_and_a_reset_counter():
    before = MetricsSnapshot.parse("ep", METRICS, 100.0)
    later = METRICS.replace('request_count_total{served_entity_name="a"} 10.0',
                            'request_count_total{served_entity_name="a"} 30.0').replace(
        'le="100.0",served_entity_name="a"} 10.0', 'le="100.0",served_entity_name="a"} 30.0').replace(
        'le="+Inf",served_entity_name="a"} 10.0', 'le="+Inf",served_entity_name="a"} 30.0')
    after = MetricsSnapshot.parse("ep", later, 102.0)
    stats = window(before, after, start_s=90.0)
    assert stats["t_s"] == 12.0 and stats["qps"] == 10.0 and stats["rate_4xx"] == 0.0
    assert stats["p50_ms"] == pytest.approx(55.0)  # the 20 new requests all took 10-100 ms
    assert stats["in_flight"] == 1.0
    assert window(after, before)["qps"] == pytest.approx(12.0 / 1e-6)  # a reset: counts from zero
    assert window(before, before)["p99_ms"] is None


# -- the live watch ----------------------------------------------------------------------------------


class FakeMetricsClient:
    """`client.metrics` answering METRICS with one more request each read; then what `after` says."""

    def __init__(self, fail_after: int | None = None, error: ServingError | None = None):
        self.reads, self.fail_after, self.error = 0, fail_after, error

    def metrics(self, name):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise self.error
        text = METRICS.replace('served_entity_name="a"} 10.0', f'served_entity_name="a"}} {10 + self.reads}.0')
        return MetricsSnapshot.parse(name, text, self.reads * 0.5)


def test_metrics_watch_in_a_kernel_until_the_duration(monkeypatch):
    from IPython.display import Image

    from jupyter_serving.widgets.metrics_watch import MetricsWatch
    from tests.fake_kernel import fake_kernel_display

    shown = fake_kernel_display(monkeypatch)
    watch = MetricsWatch(FakeMetricsClient(), "ep", interval=0.2, duration=0.7).start()
    assert watch.wait(20) and watch.reason == "--duration 0.7 s passed"
    assert len(watch.frame) >= 1 and set(watch.frame["qps"]) == {2.0}
    assert any(isinstance(s, Image) and s.data.startswith(b"\x89PNG") for s in shown)
    assert shown[-1]["text/plain"].startswith("Stopped watching 'ep' after ") and watch.button.disabled
    assert "stopped (--duration 0.7 s passed)" in repr(watch)


def test_metrics_watch_stops_when_gone_failing_or_asked(monkeypatch, capsys):
    from jupyter_serving.core.errors import BackendError
    from jupyter_serving.widgets.metrics_watch import MetricsWatch
    from tests.fake_kernel import fake_kernel_display

    gone = MetricsWatch(FakeMetricsClient(2, NotFoundError("gone")), "ep", interval=0.2, duration=60).start()
    assert gone.reason == "endpoint 'ep' is gone" and len(gone.rows) == 1  # outside a kernel: in the foreground
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("t=0s  2.00 req/s  p50/p90/p99 ")
    assert out.splitlines()[-1].startswith("Stopped watching 'ep' after ")
    broken = MetricsWatch(FakeMetricsClient(1, BackendError("HTTP 502")), "ep", interval=0.2, duration=60).start()
    assert broken.reason == "the metrics could not be read 3 times (HTTP 502)"
    fake_kernel_display(monkeypatch)
    asked = MetricsWatch(FakeMetricsClient(), "ep", interval=0.2, duration=60).start()
    asked.stop()
    assert asked.wait(10) and asked.reason == "stopped"
    with pytest.raises(NotFoundError):
        MetricsWatch(FakeMetricsClient(0, NotFoundError("no such endpoint")), "ep").start()
    assert pd.DataFrame(asked.frame).columns.tolist()[:2] == ["t_s", "qps"]
