"""Pure parts of the API: connection resolution, error mapping, status views, arguments, templates."""
from __future__ import annotations

import time

import pytest
import requests

from jupyter_serving.api import request_template_from_openapi
from jupyter_serving.client import connection
from jupyter_serving.client.errors import from_sdk_error
from jupyter_serving.client.sdk_compat import entity_input_fields, typed_expressible
from jupyter_serving.core.arguments import (
    parse_permission_level,
    parse_principal,
    parse_tags,
    parse_traffic,
)
from jupyter_serving.core.configs import input_entity
from jupyter_serving.core.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackendError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    ServingError,
    ThrottledError,
)
from jupyter_serving.core.status import EndpointStatus


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_RUNTIME_VERSION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "databrickscfg"))
    monkeypatch.setenv("JUPYTER_SERVING_HOME", str(tmp_path / "home"))
    return tmp_path


# ------------------------------------------------------------------------------------------ connection

def test_default_target_order(clean_env, monkeypatch):
    target = connection.default_target()
    assert target.kind == "local" and "started on first use" in target.describe()
    cfg = clean_env / "databrickscfg"
    cfg.write_text("[DEFAULT]\nhost = https://ws-default.example.com\ntoken = dapiSECRET\n\n"
                   "[dev]\nhost = ws-dev.example.com\ntoken = dapiDEV\n")
    target = connection.default_target()
    assert (target.kind, target.profile, target.host) == ("workspace", "DEFAULT", "https://ws-default.example.com")
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "dev")
    target = connection.default_target()
    assert (target.profile, target.host) == ("dev", "https://ws-dev.example.com")
    monkeypatch.setenv("DATABRICKS_HOST", "adb-1.azuredatabricks.net")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapiENV")
    target = connection.default_target()
    assert target.host == "https://adb-1.azuredatabricks.net" and target.source == "from DATABRICKS_HOST"
    text = target.describe()
    assert text == "the Databricks workspace https://adb-1.azuredatabricks.net (from DATABRICKS_HOST)"
    assert "dapi" not in text and "dapi" not in repr(target)


def test_runtime_counts_as_a_workspace(clean_env, monkeypatch):
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert connection.default_target().kind == "workspace"


def test_explicit_choices(clean_env, monkeypatch):
    assert connection.resolve_target(local=True).kind == "local"
    with pytest.raises(InvalidInputError, match="Choose one"):
        connection.resolve_target(local=True, host="https://x")
    with pytest.raises(AuthenticationError, match="No profile 'dev'"):
        connection.resolve_target(profile="dev")
    (clean_env / "databrickscfg").write_text("[dev]\nhost = https://ws.example.com/\ntoken = dapiDEV\n")
    assert connection.resolve_target(profile="dev").host == "https://ws.example.com"
    target = connection.resolve_target(host="https://ws.example.com")
    assert target.profile == "dev" and "credentials of profile dev" in target.source
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapiENV")
    assert "DATABRICKS_TOKEN" in connection.resolve_target(host="https://other.example.com").source
    with pytest.raises(InvalidInputError, match="Invalid host"):
        connection.resolve_target(host="https://a b")


def test_unreachable_host_fails_fast(clean_env, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapiENV")
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match="Cannot reach the Databricks workspace at http://127.0.0.1:9"):
        connection.open_client(connection.resolve_target(host="http://127.0.0.1:9"))
    assert time.monotonic() - started < 5


# -------------------------------------------------------------------------------------- error mapping

def _sdk(cls_name: str, message: str, code: str | None = None):
    from databricks.sdk import errors

    return getattr(errors, cls_name)(message, error_code=code)


@pytest.mark.parametrize("cls_name, expected", [
    ("NotFound", NotFoundError), ("ResourceDoesNotExist", NotFoundError), ("ResourceConflict", ConflictError),
    ("ResourceAlreadyExists", ConflictError), ("TooManyRequests", ThrottledError),
    ("PermissionDenied", AccessDeniedError), ("Unauthenticated", AuthenticationError),
    ("BadRequest", InvalidInputError), ("InvalidParameterValue", InvalidInputError), ("InternalError", BackendError),
])
def test_sdk_errors_map_to_one_line_serving_errors(cls_name, expected):
    mapped = from_sdk_error(_sdk(cls_name, "Something\nwent  wrong.", "SOME_CODE"), what="Doing it")
    assert type(mapped) is expected
    assert "\n" not in str(mapped) and str(mapped).startswith(("Doing it: Something went wrong",
                                                               "Doing it: the server"))
    assert mapped.error_code == "SOME_CODE"


def test_connection_errors_behind_sdk_retries_are_mapped():
    try:
        try:
            raise requests.ConnectionError("HTTPConnectionPool: [Errno 111] Connection refused")
        except requests.ConnectionError as inner:
            raise TimeoutError("Timed out after 0:01:00") from inner
    except TimeoutError as err:
        mapped = from_sdk_error(err, host="https://ws.example.com")
    assert isinstance(mapped, ConnectionFailedError)
    assert "cannot reach the server at https://ws.example.com (connection refused)" in str(mapped)


def test_debug_info_is_stripped_and_bugs_are_not_swallowed():
    err = _sdk("PermissionDenied", "Invalid access token. Config: host=https://x, token=***. Env: DATABRICKS_TOKEN")
    assert "Config:" not in str(from_sdk_error(err))
    with pytest.raises(KeyError):
        from_sdk_error(KeyError("a bug"))
    assert str(ServingError("What is wrong.", "How to fix.")) == "What is wrong. How to fix."
    assert str(ServingError("What is wrong", "How to fix.")) == "What is wrong. How to fix."


# ------------------------------------------------------------------------------------------- status

def _doc(**state) -> dict:
    return {
        "name": "ep", "id": "abc", "creator": "me@x", "last_updated_timestamp": 1_700_000_000_000,
        "state": {"ready": "READY", "config_update": "NOT_UPDATING", **state},
        "config": {"config_version": 3, "served_entities": [
            {"name": "m-1", "entity_name": "c.s.m", "entity_version": "1", "workload_size": "Small",
             "workload_type": "GPU_MEDIUM_4", "scale_to_zero_enabled": True,
             "state": {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""}},
            {"name": "m-2", "entity_name": "c.s.m", "entity_version": "2", "min_provisioned_concurrency": 4,
             "max_provisioned_concurrency": 12, "state": {"deployment": "DEPLOYMENT_READY"}}],
            "traffic_config": {"routes": [{"served_model_name": "m-1", "traffic_percentage": 30},
                                          {"served_entity_name": "m-2", "traffic_percentage": 70}]}},
        "tags": [{"key": "team", "value": "<ml>"}],
    }


@pytest.mark.parametrize("state, label", [
    ({}, "Ready"),
    ({"config_update": "IN_PROGRESS"}, "Ready (Updating)"),
    ({"config_update": "UPDATE_FAILED"}, "Ready (Update failed)"),
    ({"ready": "NOT_READY", "config_update": "IN_PROGRESS"}, "Not ready (Updating)"),
    ({"ready": "NOT_READY", "config_update": "UPDATE_FAILED"}, "Not ready (Update failed)"),
    ({"ready": "NOT_READY", "suspend": "SUSPENDED"}, "Not ready (Stopped)"),
])
def test_state_labels(state, label):
    assert EndpointStatus(_doc(**state)).state == label


def test_status_views():
    st = EndpointStatus(_doc())
    assert st.traffic == {"m-1": 30, "m-2": 70} and st.entity_names == ["m-1", "m-2"]
    text = repr(st)
    assert "m-1: c.s.m v1 · GPU_MEDIUM_4, Small (0-4 concurrent), scale to zero" in text
    assert "m-2: c.s.m v2 · CPU, 4-12 concurrent" in text
    assert "&lt;ml&gt;" in st._repr_html_() and "<ml>" not in st._repr_html_()
    assert st.summary() == "ep: Ready · config v3 · m-1 (c.s.m v1), m-2 (c.s.m v2) · traffic m-1=30%, m-2=70%"
    assert list(st.entities_frame()["max_concurrency"]) == [4, 12]


def test_input_entities_and_typed_expressibility():
    st = EndpointStatus(_doc())
    fields = entity_input_fields()
    first, second = (input_entity(e, fields) for e in st.entities)
    assert "state" not in first and first["workload_type"] == "GPU_MEDIUM_4"
    assert second == {"name": "m-2", "entity_name": "c.s.m", "entity_version": "2",
                      "min_provisioned_concurrency": 4, "max_provisioned_concurrency": 12}
    from databricks.sdk.service.serving import ServedEntityInput

    assert not typed_expressible(ServedEntityInput, first)  # GPU_MEDIUM_4 is not in the SDK enum
    assert typed_expressible(ServedEntityInput, second)


# ----------------------------------------------------------------------------------------- arguments

def test_traffic_and_tag_arguments():
    assert parse_traffic(["a=80", "b=20%"]) == {"a": 80, "b": 20}
    assert parse_traffic(["a:50,b:50"]) == {"a": 50, "b": 50}
    for words, message in ((["a"], "has no percentage"), (["=5"], "no entity name"), (["a=x"], "not an integer"),
                           (["a=1", "a=2"], "given twice"), ([], "No traffic split")):
        with pytest.raises(InvalidInputError, match=message):
            parse_traffic(words)
    assert parse_tags(["k=v", "url=a=b"]) == {"k": "v", "url": "a=b"}
    assert parse_principal("bob@x.com") == {"user_name": "bob@x.com"}
    assert parse_principal("group:admins") == {"group_name": "admins"}
    assert parse_principal("sp:1234") == {"service_principal_name": "1234"}
    assert parse_permission_level("can query") == "CAN_QUERY" and parse_permission_level("manage") == "CAN_MANAGE"


# ----------------------------------------------------------------------------------------- templates

SEED_SPEC = {
    "openapi": "3.1.0",
    "paths": {"/served-models/vanilla_simple_model-2/invocations": {"post": {"requestBody": {"content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "object", "properties": {
                "dataframe_split": {"type": "object", "properties": {
                    "columns": {"type": "array", "items": {"type": "string",
                                                           "enum": ["int_col", "float_col", "string_col"]}},
                    "data": {"type": "array", "items": {"type": "array", "prefixItems": [
                        {"type": "integer"}, {"type": "number"}, {"type": "string"}]}}}},
                "params": {"type": "object", "properties": {"sentiment": {"type": "number", "default": "0.5"}}}},
             "examples": [{"columns": ["int_col", "float_col", "string_col"], "data": [[3, 10.4, "abc"]]}]},
            {"type": "object", "properties": {"dataframe_records": {"type": "array", "items": {
                "type": "object", "properties": {"int_col": {"type": "integer"}}}}}},
        ]}}}}}}},
}


def test_template_uses_the_schema_example_and_params():
    template = request_template_from_openapi(SEED_SPEC)
    assert template == {"dataframe_split": {"columns": ["int_col", "float_col", "string_col"],
                                            "data": [[3, 10.4, "abc"]]},
                        "params": {"sentiment": 0.5}}  # typed: the schema carries defaults as strings


def test_template_without_example_builds_placeholders():
    spec = {"paths": {"/invocations": {"post": {"requestBody": {"content": {"application/json": {"schema": {
        "oneOf": [SEED_SPEC["paths"]["/served-models/vanilla_simple_model-2/invocations"]["post"]["requestBody"][
            "content"]["application/json"]["schema"]["oneOf"][0] | {"examples": []}]}}}}}}}}
    template = request_template_from_openapi(spec)
    assert template["dataframe_split"] == {"columns": ["int_col", "float_col", "string_col"], "data": [[0, 0.0, ""]]}


# ------------------------------------------------------------------------- wire behaviour (fake server)

class _Recorder:
    """A tiny HTTP server on loopback that records requests and answers canned responses."""

    def __init__(self):
        import http.server
        import json
        import threading

        self.requests: list[dict] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers), "body": body})
                if self.path.endswith("/invocations"):
                    payload = json.dumps({"error_code": "REQUEST_LIMIT_EXCEEDED",
                                          "message": "Too many concurrent requests."}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", "30")
                elif self.path.startswith("/api/2.0/serving-endpoints"):
                    payload = json.dumps({"endpoints": [{"name": "b"}, {"name": "a"}]}).encode()
                    self.send_response(200)
                else:
                    payload = b"{}"
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    rec = _Recorder()
    yield rec
    rec.close()


def test_user_agent_and_429_without_retries(recorder, clean_env):
    from jupyter_serving.api import ServingClient

    client = ServingClient.connect(host=recorder.url, token="dapiFAKE")
    assert client.names() == ["a", "b"]
    listed = [r for r in recorder.requests if r["path"] == "/api/2.0/serving-endpoints"]
    assert "jupyter-serving/0.1.0" in listed[-1]["headers"]["User-Agent"]
    started = time.monotonic()
    with pytest.raises(ThrottledError, match="HTTP 429"):
        client.query("ep", {"dataframe_records": [{"x": 1}]})
    assert time.monotonic() - started < 2  # Retry-After: 30 was not honoured: no retry
    calls = [r for r in recorder.requests if r["path"].endswith("/invocations")]
    assert len(calls) == 1
    call = calls[0]
    assert call["path"] == "/serving-endpoints/ep/invocations"
    assert "jupyter-serving/0.1.0" in call["headers"]["User-Agent"]
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["Content-Length"] == str(len(call["body"]))  # not chunked
    assert call["headers"]["Authorization"] == "Bearer dapiFAKE"
    import json

    assert json.loads(call["body"]) == {"dataframe_records": [{"x": 1}]}
    with pytest.raises(ThrottledError):
        client.query("ep", {"dataframe_records": [{"x": 1}]}, entity="ep-1")
    assert recorder.requests[-1]["path"] == "/serving-endpoints/ep/served-models/ep-1/invocations"
