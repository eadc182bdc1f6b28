"""The local secret store against the real backend: databricks-sdk's `WorkspaceClient().secrets`, plain
REST and the CLI (`jupyter-serving local secrets ...`). Values go in and never come back out.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import InvalidParameterValue, PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist

from tests.backend_helpers import Rest
from tests.conftest import unique


@pytest.fixture
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture
def workspace(local_backend) -> WorkspaceClient:
    return WorkspaceClient()  # DATABRICKS_HOST / DATABRICKS_TOKEN point at the backend (see conftest)


@pytest.fixture
def secret(workspace):
    scope, value = unique("keys"), f"sk-test-{uuid.uuid4().hex}"
    workspace.secrets.create_scope(scope)
    workspace.secrets.put_secret(scope, "openai", string_value=value)
    yield scope, "openai", value
    workspace.secrets.delete_scope(scope)


def cli(*args, home, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTER_SERVING_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "jupyter_serving.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, input=stdin)


def test_secrets_api_through_the_sdk(workspace, local_backend, backend_home, rest):
    scope, value = unique("sdk"), f"sk-{uuid.uuid4().hex}"
    workspace.secrets.create_scope(scope)
    try:
        assert scope in [s.name for s in workspace.secrets.list_scopes()]
        with pytest.raises(ResourceAlreadyExists):
            workspace.secrets.create_scope(scope)
        workspace.secrets.put_secret(scope, "a.key_1", string_value=value)
        workspace.secrets.put_secret(scope, "raw", bytes_value=base64.b64encode(b"\x00\xffbytes").decode())
        workspace.secrets.put_secret(scope, "a.key_1", string_value=value + "-2")  # overwrites
        listed = {s.key: s.last_updated_timestamp for s in workspace.secrets.list_secrets(scope)}
        assert set(listed) == {"a.key_1", "raw"} and all(ts > 1_600_000_000_000 for ts in listed.values())
        raw = rest.call("GET", "/api/2.0/secrets/list", params={"scope": scope})
        assert raw.status_code == 200
        assert all(set(item) == {"key", "last_updated_timestamp"} for item in raw.json()["secrets"])
        assert value not in raw.text
        with pytest.raises(PermissionDenied, match="never returns secret values"):
            workspace.secrets.get_secret(scope, "a.key_1")
        workspace.secrets.delete_secret(scope, "raw")
        with pytest.raises(ResourceDoesNotExist):
            workspace.secrets.delete_secret(scope, "raw")
        with pytest.raises(ResourceDoesNotExist, match="does not exist"):
            workspace.secrets.put_secret(unique("nosuch"), "k", string_value="v")
        assert [s.key for s in workspace.secrets.list_secrets(scope)] == ["a.key_1"]
        assert oct((backend_home / "secrets.db").stat().st_mode & 0o777) == "0o600"
        assert value not in (backend_home / "logs" / "backend.log").read_text(errors="replace")
    finally:
        workspace.secrets.delete_scope(scope)
    assert scope not in [s.name for s in workspace.secrets.list_scopes()]
    with pytest.raises(ResourceDoesNotExist):
        workspace.secrets.delete_scope(scope)


def test_secrets_api_refuses_bad_input(workspace, rest):
    scope = unique("bad")
    workspace.secrets.create_scope(scope)
    try:
        cases = [
            ("/api/2.0/secrets/scopes/create", {"scope": "has space"}, "scope"),
            ("/api/2.0/secrets/scopes/create", {"scope": "x" * 129}, "scope"),
            ("/api/2.0/secrets/scopes/create", {"scope": unique("kv"), "scope_backend_type": "AZURE_KEYVAULT"},
             "Azure Key Vault"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k/1", "string_value": "v"}, "key"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k"}, "exactly one of"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": "v", "bytes_value": "dg=="},
             "exactly one of"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": "v" * (128 * 1024 + 1)}, "at most"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "bytes_value": "not base64!"}, "base64"),
            ("/api/2.0/secrets/put", {"scope": scope, "key": "k", "string_value": 5}, "string_value"),
        ]
        for path, body, says in cases:
            resp = rest.call("POST", path, json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE" and says in resp.json()["message"], resp.text
        assert list(workspace.secrets.list_secrets(scope)) == []  # nothing was stored
        with pytest.raises(InvalidParameterValue):
            workspace.secrets.create_scope("no/slash")
    finally:
        workspace.secrets.delete_scope(scope)


def test_secrets_are_the_admins(local_backend, rest, secret):
    made = rest.call("POST", "/api/2.0/token-management/on-behalf-of/tokens",
                     json={"application_id": "bob@example.com"})
    bob = WorkspaceClient(host=local_backend.url, token=made.json()["token_value"], auth_type="pat")
    scope, key, value = secret
    with pytest.raises(PermissionDenied):
        bob.secrets.put_secret(scope, key, string_value="stolen")
    with pytest.raises(PermissionDenied):
        bob.secrets.list_secrets(scope)
    with pytest.raises(PermissionDenied):
        bob.secrets.delete_scope(scope)
    assert scope in [s.name for s in bob.secrets.list_scopes()]
    # Nor can bob use the admin's secret from an endpoint (whose provider he would choose).
    refused = Rest(local_backend.url, made.json()["token_value"]).create(
        unique("steal"), [{"external_model": {"name": "m", "provider": "openai", "task": "llm/v1/chat", "openai_config": {
            "openai_api_base": "http://127.0.0.1:9/v1", "openai_api_key": f"{{{{secrets/{scope}/{key}}}}}"}}}])
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED", refused.text
    assert value not in refused.text


def test_secrets_cli(local_backend, backend_home, workspace, tmp_path):
    scope, value = unique("cli"), f"sk-cli-{uuid.uuid4().hex}"
    try:
        put = cli("local", "secrets", "put", scope, "api-key", home=backend_home, stdin=value + "\n")
        assert put.returncode == 0, put.stderr
        assert put.stdout.strip() == f"Stored secret {scope}/api-key (created scope {scope})."
        value_file = tmp_path / "key.txt"
        value_file.write_text(value + "-file\n")
        again = cli("local", "secrets", "put", scope, "other", "--value-file", str(value_file), home=backend_home)
        assert again.returncode == 0 and again.stdout.strip() == f"Stored secret {scope}/other.", again.stderr
        listed = cli("local", "secrets", "list", scope, home=backend_home)
        assert listed.returncode == 0
        assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [f"{scope}/api-key", f"{scope}/other"]
        everything = cli("local", "secrets", "list", home=backend_home)
        assert f"{scope}/api-key\tupdated " in everything.stdout
        assert [s.key for s in workspace.secrets.list_secrets(scope)] == ["api-key", "other"]
        deleted = cli("local", "secrets", "delete", scope, "other", home=backend_home)
        assert deleted.returncode == 0 and deleted.stdout.strip() == f"Deleted secret {scope}/other."
        missing = cli("local", "secrets", "delete", scope, "other", home=backend_home)
        assert missing.returncode == 1 and missing.stdout == ""
        assert missing.stderr.strip() == f"error: Secret 'other' does not exist in scope '{scope}'."
        no_scope = cli("local", "secrets", "list", unique("nosuch"), home=backend_home)
        assert no_scope.returncode == 1 and no_scope.stderr.startswith("error: Secret scope '")
        assert len(no_scope.stderr.strip().splitlines()) == 1
        empty = cli("local", "secrets", "put", scope, "empty", home=backend_home, stdin="")
        assert empty.returncode == 1 and "empty" in empty.stderr
        bad = cli("local", "secrets", "put", scope, "no/slash", home=backend_home, stdin="v")
        assert bad.returncode == 1 and "not a valid scope or key name" in bad.stderr
        for run in (put, again, listed, everything, deleted, missing, no_scope):
            assert value not in run.stdout + run.stderr
        assert oct((backend_home / "secrets.db").stat().st_mode & 0o777) == "0o600"
    finally:
        workspace.secrets.delete_scope(scope)
    down = cli("local", "secrets", "list", home=tmp_path / "no-backend")
    assert down.returncode == 1 and "not running" in down.stderr and len(down.stderr.strip().splitlines()) == 1
