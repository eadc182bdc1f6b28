"""External models against the real backend (the secret store itself: test_backend_secrets.py).

The provider is `tests.openai_stub`, an OpenAI-compatible server on loopback that checks the bearer key
and records what it was sent; keys go in through databricks-sdk's `WorkspaceClient().secrets`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import threading
import time
import uuid

import pytest
from databricks.sdk import WorkspaceClient

from tests.backend_helpers import Rest
from tests.conftest import poll, unique
from tests.openai_stub import OpenAIStub


@pytest.fixture
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture
def workspace(local_backend) -> WorkspaceClient:
    return WorkspaceClient()  # DATABRICKS_HOST / DATABRICKS_TOKEN point at the backend (see conftest)


@pytest.fixture
def secret(workspace):
    """A fresh scope holding one API key: (scope, key, value); the scope is deleted afterwards."""
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


def external(api_base: str | None, task: str = "llm/v1/chat", name: str = "stub-chat", **config) -> dict:
    openai_config = {"openai_api_base": api_base, **config} if api_base is not None else dict(config)
    return {"external_model": {"name": name, "provider": "openai", "task": task, "openai_config": openai_config}}


def reference(secret) -> str:
    return f"{{{{secrets/{secret[0]}/{secret[1]}}}}}"


def sealed_keys(home, endpoint_id: str) -> list[str]:
    """The names of an endpoint's sealed plaintext keys in secrets.db (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{home / 'secrets.db'}?mode=ro", uri=True)) as db:
        return [n for (n,) in db.execute("SELECT name FROM sealed WHERE endpoint_id = ?", (endpoint_id,))]


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# an external model in front of an OpenAI-compatible server ------------------------------------------
def test_external_chat_model(rest, stub, secret, backend_home):
    name = unique("ext-chat")
    created = rest.create(name, [external(stub.url, openai_api_key=reference(secret), openai_organization="org-1")])
    assert created.status_code == 200, created.text
    try:
        doc = rest.wait_ready(name)
        served = doc["config"]["served_entities"][0]
        assert served["name"] == "stub-chat" and doc["task"] == "llm/v1/chat"
        assert served["external_model"]["openai_config"] == {"openai_api_base": stub.url,
                                                              "openai_api_key": reference(secret),
                                                              "openai_organization": "org-1"}
        answer = rest.query(name, {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5})
        assert answer.status_code == 200, answer.text
        assert answer.headers["served-model-name"] == "stub-chat"
        assert answer.json()["object"] == "chat.completion"
        assert answer.json()["choices"][0]["message"]["content"] == "stub: hello there"
        seen = stub.requests[-1]
        assert seen["path"] == "/v1/chat/completions" and seen["authorization"] == f"Bearer {secret[2]}"
        assert seen["organization"] == "org-1"
        assert seen["body"] == {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5,
                                "model": "stub-chat"}
        logs = rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/stub-chat/build-logs").json()
        assert f"External model openai:stub-chat via {stub.url}" in logs["logs"]
        shown = [rest.call("GET", f"/api/2.0/serving-endpoints/{name}").text, logs["logs"],
                 rest.call("GET", "/api/2.0/serving-endpoints").text,
                 rest.call("GET", f"/api/2.0/serving-endpoints/{name}/served-models/stub-chat/logs").text,
                 (backend_home / "logs" / "backend.log").read_text(errors="replace")]
        assert not any(secret[2] in text for text in shown)
    finally:
        rest.delete(name)


def test_external_completions_and_embeddings(rest, stub, secret):
    names = {task: unique("ext-" + task.rsplit("/", 1)[1]) for task in ("llm/v1/completions", "llm/v1/embeddings")}
    for task, name in names.items():
        assert rest.create(name, [external(stub.url, task, "stub-" + task.rsplit("/", 1)[1],
                                           openai_api_key=reference(secret))]).status_code == 200
    try:
        for name in names.values():
            assert rest.wait_ready(name)["task"] in names
        completion = rest.query(names["llm/v1/completions"], {"prompt": "once upon", "max_tokens": 3})
        assert completion.status_code == 200 and completion.json()["choices"][0]["text"] == "stub: once upon"
        assert stub.requests[-1]["path"] == "/v1/completions" and stub.requests[-1]["body"]["model"] == \
            "stub-completions"
        embedded = rest.query(names["llm/v1/embeddings"], {"input": ["ab", "abcd"]})
        assert embedded.status_code == 200, embedded.text
        assert [d["embedding"][0] for d in embedded.json()["data"]] == [2.0, 4.0]
        assert stub.requests[-1]["path"] == "/v1/embeddings" and stub.requests[-1]["body"]["model"] == \
            "stub-embeddings"
    finally:
        for name in names.values():
            rest.delete(name)


def test_external_model_streams_through_the_gateway(rest, stub, secret):
    """Needs the gateway's `request_stream` wiring: the first chunk must reach the client while the
    provider still holds the rest of the stream."""
    name = unique("ext-stream")
    assert rest.create(name, [external(stub.url, openai_api_key=reference(secret))]).status_code == 200
    try:
        rest.wait_ready(name)
        stub.hold = True
        with rest.session.post(f"{rest.url}/serving-endpoints/{name}/invocations", stream=True, timeout=60,
                               json={"messages": [{"role": "user", "content": "one two"}], "stream": True}) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines(decode_unicode=True)
            events = []
            for line in lines:
                if line:
                    events.append(line)
                if len(events) == 2:  # the role chunk, then "stub:"; the stub now waits for `release`
                    break
            stub.release.set()
            events += [line for line in lines if line]
        assert stub.released_in_time is True, "the gateway buffered the stream instead of relaying it"
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "stub: one two"
        assert stub.requests[-1]["body"]["stream"] is True and stub.requests[-1]["body"]["model"] == "stub-chat"
    finally:
        rest.delete(name)


def test_external_model_through_the_sdk(workspace, stub, secret):
    from databricks.sdk.service.serving import (
        ChatMessage,
        ChatMessageRole,
        EndpointCoreConfigInput,
        ExternalModel,
        ExternalModelProvider,
        OpenAiConfig,
        ServedEntityInput,
    )

    name = unique("ext-sdk")
    model = ExternalModel(name="stub-chat", provider=ExternalModelProvider.OPENAI, task="llm/v1/chat",
                          openai_config=OpenAiConfig(openai_api_base=stub.url, openai_api_key=reference(secret)))
    workspace.serving_endpoints.create(name, config=EndpointCoreConfigInput(
        name=name, served_entities=[ServedEntityInput(name="gpt", external_model=model)]))
    try:
        got = poll(lambda: (e := workspace.serving_endpoints.get(name)).state.ready.value == "READY" and e, 60, 0.2,
                   f"endpoint {name} to be ready")
        shown = got.config.served_entities[0].external_model
        assert shown.provider == ExternalModelProvider.OPENAI and shown.openai_config.openai_api_key == reference(secret)
        answer = workspace.serving_endpoints.query(name, messages=[ChatMessage(role=ChatMessageRole.USER,
                                                                               content="via sdk")], max_tokens=4)
        assert answer.choices[0].message.content == "stub: via sdk"
    finally:
        workspace.serving_endpoints.delete(name)


def test_changed_secret_takes_effect_on_stop_and_start(rest, stub, secret, workspace):
    name = unique("ext-rotate")
    assert rest.create(name, [external(stub.url, openai_api_key=reference(secret))]).status_code == 200
    try:
        rest.wait_ready(name)
        rotated = f"sk-rotated-{uuid.uuid4().hex}"
        workspace.secrets.put_secret(secret[0], secret[1], string_value=rotated)
        stub.api_key = rotated
        body = {"messages": [{"role": "user", "content": "who"}]}
        assert rest.query(name, body).status_code == 401  # resolved at deployment, as Databricks does
        assert rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:stop").status_code == 200
        assert rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:start").status_code == 200
        rest.wait_ready(name)
        assert rest.query(name, body).status_code == 200
        assert stub.requests[-1]["authorization"] == f"Bearer {rotated}"
        workspace.secrets.delete_secret(secret[0], secret[1])
        assert rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:stop").status_code == 200
        assert rest.call("POST", f"/api/2.0/serving-endpoints/{name}/config:start").status_code == 200
        failed = rest.wait_settled(name)
        assert failed["state"]["config_update"] == "UPDATE_FAILED", failed
        message = failed["config"]["served_entities"][0]["state"]["deployment_state_message"]
        assert f"Secret '{secret[1]}' does not exist in scope '{secret[0]}'" in message and rotated not in message
    finally:
        rest.delete(name)


def test_plaintext_key_is_sealed(rest, backend_home, workspace):
    plaintext = f"sk-plain-{uuid.uuid4().hex}"
    stub = OpenAIStub(plaintext).start()
    name = unique("ext-plain")
    try:
        created = rest.create(name, [external(stub.url, openai_api_key_plaintext=plaintext)])
        assert created.status_code == 200 and plaintext not in created.text
        doc = rest.wait_ready(name)
        assert doc["config"]["served_entities"][0]["external_model"]["openai_config"] == {"openai_api_base": stub.url}
        answer = rest.query(name, {"messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200 and stub.requests[-1]["authorization"] == f"Bearer {plaintext}"
        for path in ("state.db", "state.db-wal"):
            if (backend_home / path).exists():
                assert plaintext.encode() not in (backend_home / path).read_bytes()
        assert all("jupyter" not in s.name and name not in s.name for s in workspace.secrets.list_scopes())
        # Each update seals its key; keys of configs neither serving nor deploying are deleted.
        for version in (2, 3):
            stub.api_key = f"{plaintext}-{version}"
            assert rest.update(name, [external(stub.url, openai_api_key_plaintext=stub.api_key)]).status_code == 200
            assert rest.wait_ready(name)["config"]["config_version"] == version
            assert rest.query(name, {"messages": [{"role": "user", "content": "hi"}]}).status_code == 200
            assert 1 <= len(sealed_keys(backend_home, doc["id"])) <= 2
    finally:
        rest.delete(name)
        stub.stop()
    assert sealed_keys(backend_home, doc["id"]) == []


# validation ---------------------------------------------------------------------------------------
def test_external_model_validation(rest, secret):
    ref = reference(secret)
    cases = [
        (external("http://127.0.0.1:9/v1"), 400, "needs an API key"),
        (external("ftp://127.0.0.1/v1", openai_api_key=ref), 400, "not an http(s) URL"),
        (external("not a url", openai_api_key=ref), 400, "not an http(s) URL"),
        (external("http://user:pw@127.0.0.1/v1", openai_api_key=ref), 400, "carries credentials"),
        ({"external_model": {**external(None)["external_model"], "provider": "nosuch"}}, 400, "is unknown"),
        ({"external_model": {"name": "claude", "provider": "anthropic", "task": "llm/v1/chat",
                             "anthropic_config": {"anthropic_api_key": ref}}}, 400,
         "provider 'anthropic' is not available on the local backend; use 'openai' with openai_api_base pointing "
         "at an OpenAI-compatible server"),
        (external("http://127.0.0.1:9/v1", task="llm/v1/images", openai_api_key=ref), 400, "task"),
        ({**external("http://127.0.0.1:9/v1", openai_api_key=ref), "entity_name": "main.ml.m", "entity_version": "1"},
         400, "sets both entity_name and external_model"),
        ({**external("http://127.0.0.1:9/v1", openai_api_key=ref), "workload_size": "Small"}, 400, "workload_size"),
        (external("http://127.0.0.1:9/v1", openai_api_key=ref, openai_api_bse="typo"), 400, "openai_api_bse"),
        (external("http://127.0.0.1:9/v1", openai_api_key="sk-pasted-here"), 400, "must be a secret reference"),
        (external("http://127.0.0.1:9/v1", openai_api_key=ref, openai_api_key_plaintext="sk-x"), 400, "only one of"),
        (external("http://127.0.0.1:9/v1", openai_api_key="{{secrets/%s/nosuch}}" % secret[0]), 404,
         "does not exist"),
    ]
    for served, status, says in cases:
        name = unique("ext-bad")
        resp = rest.create(name, [served])
        body = resp.json()
        assert resp.status_code == status, (served, resp.text)
        assert set(body) == {"error_code", "message", "details"} and says in body["message"], (served, resp.text)
        assert "sk-pasted-here" not in resp.text and secret[2] not in resp.text
        assert rest.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 404  # nothing was created
    mixed = rest.create(unique("ext-bad"), [{**external("http://127.0.0.1:9/v1", openai_api_key=ref), "name": "a"},
                                            {"entity_name": "main.ml.m", "entity_version": "1", "name": "b"}],
                        routes=[{"served_model_name": "a", "traffic_percentage": 50},
                                {"served_model_name": "b", "traffic_percentage": 50}])
    assert mixed.status_code == 400 and "mixes external models and registered models" in mixed.json()["message"]


def test_external_endpoint_update_rules(rest, secret, chat_model):
    name = unique("ext-upd")
    assert rest.create(name, [external("http://127.0.0.1:9/v1", openai_api_key=reference(secret))]).status_code == 200
    try:
        before = rest.wait_ready(name)
        switch = rest.update(name, [{"entity_name": chat_model["name"], "entity_version": chat_model["version"]}])
        assert switch.status_code == 400 and "cannot switch it" in switch.json()["message"], switch.text
        plaintext = f"sk-upd-{uuid.uuid4().hex}"
        bad = rest.update(name, [external("file:///etc/passwd", openai_api_key_plaintext=plaintext)])
        assert bad.status_code == 400 and plaintext not in bad.text
        after = rest.get(name)
        assert after["config"] == before["config"] and after["state"] == before["state"]
        moved = rest.update(name, [external("http://127.0.0.1:8/v1", openai_api_key=reference(secret))])
        assert moved.status_code == 200, moved.text
        doc = rest.wait_ready(name)  # a new base URL is a new deployment
        assert doc["config"]["config_version"] == 2
        assert doc["config"]["served_entities"][0]["external_model"]["openai_config"]["openai_api_base"] == \
            "http://127.0.0.1:8/v1"
    finally:
        rest.delete(name)


# the provider is down ---------------------------------------------------------------------------
def test_provider_down_answers_an_error_not_a_hang(rest, secret):
    name = unique("ext-down")
    assert rest.create(name, [external(f"http://127.0.0.1:{free_port()}/v1",
                                       openai_api_key=reference(secret))]).status_code == 200
    try:
        rest.wait_ready(name)  # an external model is ready at once: its provider is reached per query
        started = time.monotonic()
        resp = rest.query(name, {"messages": [{"role": "user", "content": "anyone?"}]})
        assert time.monotonic() - started < 30
        assert resp.status_code in (502, 503, 504), resp.text
        assert set(resp.json()) >= {"error_code", "message"} and secret[2] not in resp.text
    finally:
        rest.delete(name)


def test_external_upstream_directly(secret):
    """ExternalUpstream on its own: the interface the gateway uses, streaming and early close included."""
    from jupyter_serving.local.external import ExternalUpstream
    from jupyter_serving.local.upstream import UpstreamClosed

    stub = OpenAIStub(secret[2]).start()
    model = external(stub.url, openai_api_key=reference(secret))["external_model"]

    async def scenario() -> None:
        upstream = ExternalUpstream(model, secret[2])
        assert (await upstream.request("GET", "/ping"))[0] == 200
        status, body, kind = await upstream.request(
            "POST", "/invocations", json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
            "application/json", 30)
        assert status == 200 and kind.startswith(b"application/json") and b"stub: x" in body
        body = json.dumps({"messages": [{"role": "user", "content": "a b c"}], "stream": True}).encode()
        status, kind, pieces = await upstream.request_stream("POST", "/stream", body, "application/json", 30)
        assert status == 200 and kind.startswith(b"text/event-stream")
        assert b"data: [DONE]" in b"".join([piece async for piece in pieces])
        stub.hold, stub.release = True, threading.Event()
        status, _, pieces = await upstream.request_stream("POST", "/stream", body, "application/json", 30)
        assert b"chat.completion.chunk" in await pieces.__anext__()
        await pieces.aclose()  # early: the provider sees the request go away
        await asyncio.to_thread(poll, stub.disconnected.is_set, 20, 0.05, "the stub to see the disconnect")
        with pytest.raises(TimeoutError):
            await upstream.request("POST", "/invocations", body.replace(b"true", b"false"), "application/json", 0.5)
        stub.release.set()
        wrong = ExternalUpstream(model, "sk-wrong-key-123")
        status, body, _ = await wrong.request("POST", "/invocations", b'{"messages": [{"content": "x"}]}')
        assert status == 401 and b"sk-wrong-key-123" not in body
        wrong.close()
        down = ExternalUpstream({**model, "openai_config": {"openai_api_base": f"http://127.0.0.1:{free_port()}/v1"}},
                                secret[2])
        with pytest.raises(UpstreamClosed):
            await down.request("POST", "/invocations", b"{}")
        upstream.close()
        with pytest.raises(UpstreamClosed):
            await upstream.request("POST", "/invocations", b"{}")

    try:
        asyncio.run(scenario())
    finally:
        stub.stop()


def test_external_model_in_front_of_this_backend(rest, local_backend, chat_model, workspace):
    """An external model whose provider is this very backend's OpenAI-compatible route (a registered
    ChatModel's endpoint behind it)."""
    probe = rest.call("POST", "/serving-endpoints/chat/completions", json={"model": unique("none"), "messages": []})
    if probe.status_code == 404 and probe.json().get("error_code") == "ENDPOINT_NOT_FOUND":
        pytest.skip("this backend has no OpenAI-compatible /serving-endpoints/chat/completions route yet")
    inner, outer, scope = unique("inner-chat"), unique("ext-self"), unique("self")
    workspace.secrets.create_scope(scope)
    workspace.secrets.put_secret(scope, "token", string_value=local_backend.token)
    try:
        assert rest.create(inner, [{"entity_name": chat_model["name"], "entity_version": chat_model["version"],
                                    "workload_size": "Small", "scale_to_zero_enabled": False}]).status_code == 200
        assert rest.create(outer, [external(f"{local_backend.url}/serving-endpoints", name=inner,
                                            openai_api_key=f"{{{{secrets/{scope}/token}}}}")]).status_code == 200
        rest.wait_ready(inner, timeout=240)
        rest.wait_ready(outer)
        answer = rest.query(outer, {"messages": [{"role": "user", "content": "round trip"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "echo: round trip"
    finally:
        rest.delete(outer)
        rest.delete(inner)
        workspace.secrets.delete_scope(scope)
