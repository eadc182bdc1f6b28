"""Creating GenAI endpoints against the real local backend: `%serve create --external` in front of an
OpenAI-compatible stub (tests/openai_stub.py, which checks the bearer key) with the key in a secret put
through `WorkspaceClient().secrets`; `--pt-units` (the provisioned-throughput API) and `update_pt`;
agents; `%serve gateway`; and the create form's Create for external and provisioned-throughput kinds.

Every test creates and deletes its own endpoints and secret scope; waits poll with deadlines.
"""
from __future__ import annotations

import uuid

import pytest
from databricks.sdk import WorkspaceClient

from jupyter_serving import api
from tests.backend_helpers import Rest
from tests.conftest import poll, unique
from tests.magic_helpers import ok, shell
from tests.openai_stub import OpenAIStub

DEPLOY_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def ip(local_backend):
    api.disconnect()
    return shell()


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


@pytest.fixture
def secret(local_backend):
    """A fresh scope holding one API key: (scope, key, value); the scope is deleted afterwards."""
    workspace = WorkspaceClient()  # DATABRICKS_HOST / DATABRICKS_TOKEN point at the backend (see conftest)
    scope, value = unique("keys"), f"sk-test-{uuid.uuid4().hex}"
    workspace.secrets.create_scope(scope)
    workspace.secrets.put_secret(scope, "openai", string_value=value)
    yield scope, "openai", value
    workspace.secrets.delete_scope(scope)


@pytest.fixture
def stub(secret):
    server = OpenAIStub(secret[2]).start()
    yield server
    server.stop()


def delete(client, name: str) -> None:
    if client.exists(name):
        client.delete(name)


def ask(local_backend, name: str, text: str) -> dict:
    """A chat query over plain REST (what any OpenAI-style client sends)."""
    answer = Rest(local_backend.url, local_backend.token).query(name, {"messages": [{"role": "user", "content": text}]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_create_external_through_the_magic_then_query_the_stub(ip, client, stub, secret, local_backend):
    name = unique("gx")
    ran = ok(ip, f"%serve create {name} --external openai:stub-chat --api-base {stub.url} "
                 f"--secret {secret[0]}/{secret[1]}")
    try:
        assert ran.value.is_ready
        assert f"'{name}' forwards to openai:stub-chat (llm/v1/chat) at {stub.url}" in ran.out
        assert ask(local_backend, name, "hello")["choices"][0]["message"]["content"] == "stub: hello"
        seen = stub.requests[-1]
        assert seen["authorization"] == f"Bearer {secret[2]}" and seen["body"]["model"] == "stub-chat"
        entity = client.get(name).entities[0]
        assert entity["external_model"]["openai_config"]["openai_api_key"] == f"{{{{secrets/{secret[0]}/openai}}}}"
        assert secret[2] not in ran.out + ran.err + str(client.get(name).raw)
    finally:
        delete(client, name)


def test_a_missing_secret_is_refused_before_the_endpoint_exists(ip, client, stub, secret):
    from tests.magic_helpers import one_line_error, run

    name = unique("gx-nokey")
    message = one_line_error(run(ip, f"%serve create {name} --external openai:stub-chat --api-base {stub.url} "
                                     f"--secret {secret[0]}/missing"))
    assert f"Secret scope '{secret[0]}' has no key 'missing' (its keys: openai)" in message
    assert f"jupyter-serving local secrets put {secret[0]} missing" in message
    assert not client.exists(name)


def test_gateway_on_an_external_endpoint(ip, client, stub, secret, local_backend):
    name = unique("gw")
    client.create_external(name, "stub-chat", api_base=stub.url, secret=f"{secret[0]}/{secret[1]}",
                           ai_gateway={"rate_limits": [{"calls": 100, "key": "user", "renewal_period": "minute"}]},
                           timeout=DEPLOY_TIMEOUT)
    try:
        shown = ok(ip, f"%serve gateway {name} --usage-tracking --inference-table main.nb.x --pii mask").value
        assert "inference table: main.nb.x_payload" in repr(shown)
        gateway = client.workspace.api_client.do("GET", f"/api/2.0/serving-endpoints/{name}")["ai_gateway"]
        assert gateway["usage_tracking_config"] == {"enabled": True}
        assert gateway["inference_table_config"] == {"enabled": True, "catalog_name": "main", "schema_name": "nb",
                                                     "table_name_prefix": "x"}
        assert gateway["guardrails"]["input"]["pii"] == {"behavior": "MASK"}
        assert gateway["rate_limits"] == [{"calls": 100, "key": "user", "renewal_period": "minute"}]  # kept
        answer = ask(local_backend, name, "mail a@b.com")
        assert "a@b.com" not in stub.requests[-1]["body"]["messages"][0]["content"]  # masked before the provider
        assert answer["choices"][0]["message"]["content"].startswith("stub: mail")
    finally:
        delete(client, name)


def test_create_pt_through_the_magic_and_change_its_units(ip, client, iris_models):
    name = unique("gpt")
    model, version = iris_models["name"], iris_models["versions"][0]
    ran = ok(ip, f"%serve create {name} --model {model} --version {version} --pt-units 50 --no-wait")
    try:
        raw = client.get(name).raw
        entity = (raw.get("pending_config") or raw["config"])["served_entities"][0]
        assert entity["provisioned_model_units"] == 50 and "workload_size" not in entity
        assert "follow it with" in ran.out
        status = client.wait(name, timeout=DEPLOY_TIMEOUT)
        assert status.is_ready and status.entities[0]["provisioned_model_units"] == 50
        status = client.update_pt(name, 120, timeout=DEPLOY_TIMEOUT)
        assert status.entities[0]["provisioned_model_units"] == 120 and status.config_version == 2
    finally:
        delete(client, name)


def test_an_agent_is_created_like_any_model_and_says_its_task(ip, client, responses_agent_model):
    name = unique("gagent")
    ran = ok(ip, f"%serve create {name} --model {responses_agent_model['name']} "
                 f"--version {responses_agent_model['version']}")
    try:
        assert ran.value.is_ready
        assert f"'{name}' serves an agent (agent/v1/responses). Query it with `%%query {name}`" in ran.out
    finally:
        delete(client, name)


def idle(form, timeout=30.0):
    poll(lambda: form.state != "loading" and form.pending == 0, timeout, 0.02, "the form to be idle")
    return form


def test_form_creates_an_external_endpoint(client, stub, secret):
    from jupyter_serving.widgets import CreateEndpointForm

    form = idle(CreateEndpointForm(client, kind="external"))
    name = unique("gfx")
    try:
        ext = form.external
        poll(lambda: secret[0] in ext.scope.options, 10, 0.05, "the secret scopes to be listed")
        ext.model_name.value, ext.api_base.value = "stub-chat", stub.url
        form.name.value = name
        ext.scope.value = secret[0]
        idle(form)
        assert ext.key.value == "openai" and form.errors == []
        form.gateway.usage.value = True
        form.create_button.click()
        poll(lambda: form.state in ("ready", "failed"), DEPLOY_TIMEOUT, 0.1, "the form's endpoint")
        assert form.state == "ready", form.message
        raw = client.get(name).raw
        assert raw["config"]["served_entities"][0]["external_model"]["name"] == "stub-chat"
        assert raw["ai_gateway"]["usage_tracking_config"] == {"enabled": True}
    finally:
        form.close()
        delete(client, name)


def test_form_creates_a_provisioned_throughput_endpoint(client, iris_models):
    from jupyter_serving.widgets import CreateEndpointForm

    form = idle(CreateEndpointForm(client, model=iris_models["name"], version=iris_models["versions"][0], kind="pt"))
    name = unique("gfpt")
    try:
        form.name.value = name
        form.entities[0].units.value = 20
        assert form.errors == [] and "2,000 tokens/s locally" in form.entities[0].units_note.value
        form.create_button.click()
        poll(lambda: form.state in ("ready", "failed"), DEPLOY_TIMEOUT, 0.1, "the form's endpoint")
        assert form.state == "ready", form.message
        assert client.get(name).entities[0]["provisioned_model_units"] == 20
    finally:
        form.close()
        delete(client, name)
