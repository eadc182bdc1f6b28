"""Creating GenAI endpoints, fast tier (no backend): the short syntax of the new flags, what `%serve create
--external / --pt-units` and `%serve gateway` send through databricks-sdk's typed classes (a real
`ServingClient` over tests.genai_workspace_fake), one-line errors before anything is sent, and the
create form's kinds, fields and field errors (headless ipywidgets), all computed with `core.rules`.
"""
from __future__ import annotations

import pytest
from databricks.sdk.service import serving as sdk
from IPython.core.error import UsageError

from jupyter_serving.core import ai_gateway, genai, rules
from jupyter_serving.core.errors import InvalidInputError
from tests.conftest import poll
from tests.genai_workspace_fake import FakeWorkspace, fake_client

STUB_BASE = "http://127.0.0.1:9/v1"


@pytest.fixture
def ws():
    return FakeWorkspace(endpoints={"ep": {"ai_gateway": {"usage_tracking_config": {"enabled": True}}}},
                         secrets={"keys": ["openai"], "empty": []})


@pytest.fixture
def magics(ws, monkeypatch):
    from jupyter_serving.client import session
    from jupyter_serving.magics.serve import ServeMagics

    monkeypatch.setattr(session, "_default_client", fake_client(ws))
    return ServeMagics(shell=None)


def one_line(magics, line: str) -> str:
    with pytest.raises(UsageError) as err:
        magics.serve(line)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- the short syntax -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, limit", [
    ("100/min per user", {"key": "user", "calls": 100}),
    ("100 calls/min", {"key": "endpoint", "calls": 100}),
    ("5000 tokens / minute per group:data-eng", {"key": "user_group", "principal": "data-eng", "tokens": 5000}),
    ("100 calls, 5000 tokens/min per sp", {"key": "service_principal", "calls": 100, "tokens": 5000}),
    ("7 requests/min per user:alice@example.com", {"key": "user", "principal": "alice@example.com", "calls": 7}),
])
def test_rate_limit_specs(spec, limit):
    parsed = ai_gateway.parse_rate_limit(spec)
    assert parsed == {**limit, "renewal_period": "minute"}
    assert ai_gateway.parse_rate_limit(ai_gateway.limit_spec(parsed)) == parsed  # what the code view writes


@pytest.mark.parametrize("spec", ["lots per user", "100 per user", "100/min per team", "100 calls, 5 calls/min",
                                  "x tokens/min", "2000000000/min"])
def test_bad_rate_limit_specs_are_one_line(spec):
    with pytest.raises(InvalidInputError) as err:
        ai_gateway.parse_rate_limit(spec)
    assert "\n" not in str(err.value)


def test_gateway_settings_merge_over_the_current_ones_and_read_in_words():
    current = {"usage_tracking_config": {"enabled": True},
               "guardrails": {"input": {"invalid_keywords": ["secret"]}}}
    new = ai_gateway.build(current, inference_table="main.nb.x", pii="mask", rate_limits=["100/min per user"],
                           fallback=True)
    assert new["usage_tracking_config"] == {"enabled": True} and new["fallback_config"] == {"enabled": True}
    assert new["guardrails"]["input"] == {"invalid_keywords": ["secret"], "pii": {"behavior": "MASK"}}
    assert new["guardrails"]["output"] == {"pii": {"behavior": "MASK"}}
    assert current["guardrails"]["input"] == {"invalid_keywords": ["secret"]}  # not changed in place
    assert ai_gateway.describe(new) == [
        "usage tracking: on", "inference table: main.nb.x_payload", "rate limits: 100 calls/min per user",
        "guardrails: input: keywords secret; PII mask · output: PII mask", "fallback: on"]
    assert ai_gateway.build(new, inference_table=False)["inference_table_config"]["enabled"] is False
    for bad in ("main.nb", "main.n-b.x", "a..b"):
        with pytest.raises(InvalidInputError):
            ai_gateway.parse_inference_table(bad)


def test_external_and_pt_entities_are_checked_by_the_rules():
    assert genai.parse_external("openai:llama3:8b") == ("openai", "llama3:8b")
    assert genai.parse_secret("keys/openai") == genai.parse_secret("{{secrets/keys/openai}}") == ("keys", "openai")
    entity = genai.external_entity("gpt-4o-mini", api_base=STUB_BASE, secret="keys/openai", task="embeddings")
    assert entity["external_model"] == {"name": "gpt-4o-mini", "provider": "openai", "task": "llm/v1/embeddings",
                                        "openai_config": {"openai_api_base": STUB_BASE,
                                                          "openai_api_key": "{{secrets/keys/openai}}"}}
    assert rules.normalize_config({"served_entities": [entity]})["served_entities"][0]["name"] == "gpt-4o-mini"
    with pytest.raises(rules.RuleViolation, match="openai_config needs an API key"):
        rules.normalize_config({"served_entities": [genai.external_entity("gpt", api_base=STUB_BASE)]})
    assert genai.pt_throughput_text(50) == ("50 model units: 5,000 tokens/s locally (10,000 with burst scaling) · "
                                            "4 concurrent requests")
    assert genai.pt_throughput_text(0) == ""  # the rules refuse 0 units
    units = rules.PT_TOKENS_PER_UNIT_PER_S * 250
    assert genai.pt_throughput_text(250, False) == f"250 model units: {units:,} tokens/s locally · 12 concurrent requests"


# -- %serve create and %serve gateway, through the typed SDK ----------------------------------------

def test_create_external_sends_the_typed_external_model_and_gateway(magics, ws, capsys):
    status = magics.serve(f"create chat --external openai:gpt-4o-mini --api-base {STUB_BASE} --secret keys/openai "
                          "--task embeddings --usage-tracking --rate-limit '100/min per user' --pii mask --no-wait")
    (sent,) = ws.sent("create")
    entity = sent["config"].served_entities[0]
    assert entity.external_model.provider == sdk.ExternalModelProvider.OPENAI
    assert (entity.external_model.name, entity.external_model.task) == ("gpt-4o-mini", "llm/v1/embeddings")
    assert entity.external_model.openai_config.openai_api_key == "{{secrets/keys/openai}}"
    assert entity.external_model.openai_config.openai_api_key_plaintext is None
    gateway = sent["ai_gateway"]
    assert gateway.usage_tracking_config.enabled is True
    assert gateway.rate_limits[0].key == sdk.AiGatewayRateLimitKey.USER and gateway.rate_limits[0].calls == 100
    assert gateway.guardrails.output.pii.behavior == sdk.AiGatewayGuardrailPiiBehaviorBehavior.MASK
    assert status.name == "chat" and "Creating endpoint 'chat'" in capsys.readouterr().out


def test_create_pt_goes_through_the_provisioned_throughput_api(magics, ws, capsys):
    magics.serve("create pt1 --model main.ml.m --version 3 --pt-units 50 --no-burst-scaling --no-wait")
    (sent,) = ws.sent("create_provisioned_throughput_endpoint")
    assert isinstance(sent["config"], sdk.PtEndpointCoreConfig)
    entity = sent["config"].served_entities[0]
    assert (entity.entity_name, entity.entity_version, entity.provisioned_model_units) == ("main.ml.m", "3", 50)
    assert entity.burst_scaling_enabled is False
    magics.serve("create pt2 --model main.ml.m --version 1 --pt-units 50 --model main.ml.m --version 2 --pt-units 100 "
                 "--traffic m-1=80 m-2=20 --fallback --no-wait")
    sent = ws.sent("create_provisioned_throughput_endpoint")[1]
    assert [e.provisioned_model_units for e in sent["config"].served_entities] == [50, 100]
    assert [r.traffic_percentage for r in sent["config"].traffic_config.routes] == [80, 20]
    assert sent["ai_gateway"].fallback_config.enabled is True
    assert ws.sent("create") == []


def test_the_python_api_for_pt_external_and_gateway(ws):
    client = fake_client(ws)
    client.create_pt("p", "main.ml.m", 2, units=10, wait=False)
    (sent,) = ws.sent("create_provisioned_throughput_endpoint")
    assert sent["config"].served_entities[0].as_dict() == {"entity_name": "main.ml.m", "entity_version": "2",
                                                           "provisioned_model_units": 10}
    with pytest.raises(InvalidInputError, match="cannot be combined with workload_size"):
        client.create("p2", model="main.ml.m", version=1, provisioned_model_units=10, workload_size="Small")
    client.create_external("e", "gpt", api_base=STUB_BASE, api_key_plaintext="sk-secret-123", wait=False,
                           ai_gateway=ai_gateway.build({}, rate_limits=["5 tokens/min"]))
    (sent,) = ws.sent("create")
    assert sent["config"].served_entities[0].external_model.openai_config.openai_api_key_plaintext == "sk-secret-123"
    assert sent["ai_gateway"].rate_limits[0].tokens == 5
    with pytest.raises(InvalidInputError) as err:
        client.create_external("e2", "gpt", api_base="ftp://x/v1", api_key_plaintext="sk-secret-123")
    assert "sk-secret-123" not in str(err.value)
    assert client.set_ai_gateway("ep", guardrail_keywords="secret, password", guardrails_on="input") == {
        "usage_tracking_config": {"enabled": True}, "guardrails": {"input": {"invalid_keywords": ["secret", "password"]}}}
    with pytest.raises(InvalidInputError, match="is not a provisioned-throughput endpoint"):
        client.update_pt("ep", 20)
    client.update_pt("p", 20, wait=False)
    (sent,) = ws.sent("update_provisioned_throughput_endpoint_config")
    assert sent["name"] == "p" and sent["config"].served_entities[0].provisioned_model_units == 20


def test_a_ready_genai_endpoint_says_what_it_is():
    doc = {"name": "bot", "task": "agent/v1/responses",
           "config": {"served_entities": [{"name": "bot-1", "entity_name": "main.ml.bot", "entity_version": "1"}]}}
    assert genai.describe_genai(doc) == ("'bot' serves an agent (agent/v1/responses). Query it with `%%query bot` "
                                         'and {"input": [{"role": "user", "content": "Hello"}]}.')
    ext = {"name": "g", "config": {"served_entities": [genai.external_entity("gpt", api_base=STUB_BASE,
                                                                             secret="keys/openai")]}}
    assert genai.describe_genai(ext).startswith(f"'g' forwards to openai:gpt (llm/v1/chat) at {STUB_BASE}.")
    pt = {"name": "p", "config": {"served_entities": [genai.pt_entity("m", "1", 100)]}}
    assert "'p' has provisioned throughput: 100 model units: 10,000 tokens/s" in genai.describe_genai(pt)
    assert genai.describe_genai({"name": "iris", "config": {"served_entities": [{"entity_name": "m"}]}}) == ""


def test_gateway_shows_and_changes_the_settings(magics, ws):
    shown = magics.serve("gateway ep")
    assert repr(shown).splitlines()[:2] == ["AI Gateway of endpoint 'ep':", "  usage tracking: on"]
    changed = magics.serve("gateway ep --inference-table main.nb.x --pii mask --calls 10 --tokens 500 --per group:eng")
    (sent,) = ws.sent("put_ai_gateway")
    assert sent["usage_tracking_config"].enabled is True  # kept: only the settings given change
    assert sent["inference_table_config"].table_name_prefix == "x"
    assert sent["guardrails"].input.pii.behavior == sdk.AiGatewayGuardrailPiiBehaviorBehavior.MASK
    assert (sent["rate_limits"][0].key, sent["rate_limits"][0].principal) == (sdk.AiGatewayRateLimitKey.USER_GROUP,
                                                                              "eng")
    assert "rate limits: 10 calls, 500 tokens/min per group:eng" in repr(changed)
    magics.serve("gateway ep --replace --fallback")
    sent = ws.sent("put_ai_gateway")[1]
    assert sent["fallback_config"].enabled is True and sent["usage_tracking_config"] is None


@pytest.mark.parametrize("line, says", [
    ("create x --secret keys/openai", "--secret goes with --external"),
    ("create x --external gpt-4o --secret keys/openai", "does not name a provider and a model"),
    (f"create x --external openai:gpt --api-base {STUB_BASE}", "needs its API key: give --secret SCOPE/KEY"),
    ("create x --external openai:gpt --api-base ftp://h/v1 --secret keys/openai", "is not an http(s) URL"),
    (f"create x --external openai:gpt --api-base {STUB_BASE} --secret keys/other", "has no key 'other'"),
    (f"create x --external openai:gpt --api-base {STUB_BASE} --secret nope/openai", "No secret scope 'nope'"),
    (f"create x --external anthropic:claude --api-base {STUB_BASE} --secret keys/openai", "not available on the local"),
    ("create x --external openai:gpt --secret keys/openai --model m --version 1", "not both"),
    ("create x --model m --version 1 --pt-units 0", "provisioned_model_units must be a whole number from 1"),
    ("create x --model m --version 1 --pt-units 5 --workload-size Small", "cannot be combined with workload_size"),
    ("create x --model m --version 1 --pt-units 5 --model m --version 2", "--pt-units for every served entity"),
    ("create x --model m --version 1 --rate-limit 'lots per user'", "is not COUNT/min [per WHO]"),
    ("create x --model m --version 1 --rate-limit '10/min per user' --calls 5 --per user", "merge them into one"),
    ("create x --model m --version 1 --calls 5 --per group", "a user_group rate limit needs principal"),
    ("create x --model m --version 1 --per user", "--per needs --calls or --tokens"),
    ("create x --model m --version 1 --inference-table main.nb", "is not CATALOG.SCHEMA.PREFIX"),
    ("create x --model m --version 1 --pii hide", "invalid choice: 'hide'"),
    ("gateway ep --no-inference-table --inference-table a.b.c", "not both"),
])
def test_mistakes_are_one_line_and_nothing_is_sent(magics, ws, line, says):
    assert says in one_line(magics, line)
    assert not any(m in ("create", "create_provisioned_throughput_endpoint", "put_ai_gateway") for m, _ in ws.calls)


def test_an_enabled_inference_table_keeps_its_name_and_a_typo_gets_a_did_you_mean(magics, ws):
    ws.docs["ep"]["ai_gateway"] = ai_gateway.build({}, inference_table="main.nb.x")
    with pytest.raises(rules.RuleViolation) as rule:
        rules.validate_ai_gateway(ai_gateway.build({}, inference_table="main.other.x"), ws.docs["ep"]["ai_gateway"])
    assert one_line(magics, "gateway ep --inference-table main.other.x").startswith(rule.value.message)
    assert "Did you mean 'ep'?" in one_line(magics, "gateway epp --usage-tracking")
    assert ws.sent("put_ai_gateway") == []


def test_help_and_completion_know_the_new_flags(magics, capsys):
    from types import SimpleNamespace

    magics.serve("help")
    assert "  gateway" in capsys.readouterr().out
    magics.serve("help gateway")
    assert "--rate-limit SPEC" in capsys.readouterr().out
    complete = lambda line: magics.complete_serve(SimpleNamespace(line=line))  # noqa: E731
    assert {"--external", "--api-base", "--secret", "--task", "--pt-units", "--no-burst-scaling", "--rate-limit",
            "--inference-table", "--pii", "--fallback"} <= set(complete("%serve create x --"))
    assert complete("%serve create x --per ") == ["user", "endpoint", "group:", "sp", "sp:", "user:"]
    assert complete("%serve create x --task ") == ["chat", "completions", "embeddings"]
    assert {"--replace", "--no-rate-limits", "--no-inference-table"} <= set(complete("%serve gateway ep --"))
    assert "gateway" in complete("%serve gat")


# -- the create form ---------------------------------------------------------------------------------

@pytest.fixture
def form(ws):
    from jupyter_serving.widgets import CreateEndpointForm, StaticCatalog

    catalog = StaticCatalog({"main.ml.iris": {"1": {"size_bytes": 40_000, "flavors": ["sklearn"]}},
                             "main.ml.agent": {"1": {"size_bytes": 40_000, "task": "agent/v1/responses"}}})
    form = CreateEndpointForm(fake_client(ws), catalog=catalog, model="main.ml.iris")
    idle(form)
    yield form
    form.close()


def idle(form):
    poll(lambda: form.state != "loading" and form.pending == 0, 10, 0.02, "the form to be idle")
    return form


def text(widget) -> str:
    import html

    return html.unescape(widget.value)


def shown(widget) -> bool:
    return widget.layout.display != "none"


def test_the_form_shows_the_fields_of_each_kind(form):
    entity = form.entities[0]
    assert form.kind == "model" and shown(form.entities_box) and not shown(form.external)
    assert shown(entity.compute_rows[0]) and not shown(entity.pt_row) and shown(form.gpu_section)
    form.kind_picker.value = "external"
    idle(form)
    assert not shown(form.entities_box) and not shown(form.add_button) and shown(form.external)
    assert not shown(form.gpu_section) and not shown(form.traffic_box) and shown(form.gateway_section)
    form.kind_picker.value = "pt"
    assert shown(form.entities_box) and not shown(form.external) and not shown(form.gpu_section)
    assert shown(entity.pt_row) and not any(shown(r) for r in entity.compute_rows)
    assert "provisioned_model_units" in entity.entity() and "workload_size" not in entity.entity()
    form.kind_picker.value = "agent"
    assert shown(entity.compute_rows[0]) and not shown(entity.pt_row) and shown(form.gpu_section)
    assert "this model's MLmodel has no task, not an agent's" in text(entity.advice)  # iris is no agent
    entity.model.value = "main.ml.agent"
    idle(form)
    assert "Task agent/v1/responses (an agent)" in text(entity.advice)
    assert form.gateway_section.selected_index is None  # the AI Gateway section starts collapsed


def test_external_fields_errors_come_from_the_rules_beside_their_field(form):
    form.kind_picker.value = "external"
    idle(form)
    ext = form.external
    assert ext.scope.options == ("empty", "keys")  # listed through w.secrets.list_scopes
    assert "external_model.name is required" in text(ext.notes["model"]) and form.create_button.disabled
    ext.model_name.value = "gpt-4o-mini"
    assert form.name.value == "gpt-4o-mini"  # the endpoint name follows the model
    assert "needs an API key" in text(ext.notes["secret"])
    ext.scope.value = "keys"
    idle(form)
    assert ext.key.options == ("openai",) and ext.key.value == "openai"  # the scope's only key
    ext.api_base.value = "ftp://example.com/v1"
    with pytest.raises(rules.RuleViolation) as err:
        rules.normalize_config({"served_entities": [ext.entity()]})
    assert form.errors == [err.value.message] and "is not an http(s) URL" in text(ext.notes["api_base"])
    assert text(ext.notes["secret"]) == "" and text(ext.notes["model"]) == ""
    ext.api_base.value = STUB_BASE
    assert form.errors == [] and not form.create_button.disabled
    ext.scope.value = "bad scope!"
    assert "is not SCOPE/KEY" in text(ext.notes["secret"]) and form.create_button.disabled


def test_pt_units_say_their_throughput_and_their_errors(form):
    form.kind_picker.value = "pt"
    entity = form.entities[0]
    entity.units.value = 100
    assert genai.pt_throughput_text(100).split(": ", 1)[1] in text(entity.units_note) and form.errors == []
    entity.units.value = 0
    with pytest.raises(rules.RuleViolation) as err:
        rules.normalize_config({"served_entities": [entity.entity()]})
    assert form.errors == [err.value.message]
    assert "provisioned_model_units must be a whole number" in text(entity.units_note)
    entity.burst_scaling.value = False
    entity.units.value = 20
    assert "2,000 tokens/s locally ·" in text(entity.units_note) and entity.entity()["burst_scaling_enabled"] is False


def test_gateway_fields_errors_beside_them(form):
    gw = form.gateway
    gw.add_rate_limit(100)
    second = gw.add_rate_limit(5)
    with pytest.raises(rules.RuleViolation) as err:
        rules.validate_rate_limits([ai_gateway.rate_limit(100, per="user"), ai_gateway.rate_limit(5, per="user")])
    assert form.errors == [err.value.message] and "merge them" in text(gw.notes["rate"])
    second.key.value = "user_group"
    assert "needs principal" in text(gw.notes["rate"])
    second.principal.value = "eng"
    second.tokens.value = "many"
    assert "tokens 'many' is not a whole number" in text(gw.notes["rate"])
    second.tokens.value = "500"
    gw.table.value = True
    assert "catalog, schema and table prefix" in text(gw.notes["table"]) and form.create_button.disabled
    gw.catalog.value, gw.schema.value, gw.prefix.value = "main", "nb", "x-y"
    assert "is invalid: use letters, digits and '_'" in text(gw.notes["table"])
    gw.prefix.value = "chat"
    gw.usage.value, gw.pii.value, gw.sides.value = True, "block", "input"
    assert form.errors == [] and text(gw.notes["rate"]) == text(gw.notes["table"]) == ""
    assert form.ai_gateway() == ai_gateway.build(
        {}, usage_tracking=True, inference_table="main.nb.chat", pii="block", guardrails_on="input",
        rate_limits=["100/min per user", "5 calls, 500 tokens/min per group:eng"])
    assert form.gateway_section.get_title(0).startswith("AI Gateway · usage tracking: on, inference table")
    assert "--rate-limit '5 calls, 500 tokens/min per group:eng'" in form.magic_line()
    assert "--pii block --guardrails-on input" in form.magic_line()


def run_generated(code: str, monkeypatch) -> dict:
    """Run the form's databricks-sdk code against a recorder; the keyword arguments of its create call."""
    import databricks.sdk

    seen: dict = {}

    class Endpoints:
        def create_and_wait(self, **kwargs):
            seen.update(kwargs, call="create_and_wait")
            return type("E", (), {"name": kwargs["name"], "state": "READY"})

        def create_provisioned_throughput_endpoint_and_wait(self, **kwargs):
            seen.update(kwargs, call="create_provisioned_throughput_endpoint_and_wait")
            return type("E", (), {"name": kwargs["name"], "state": "READY"})

    monkeypatch.setattr(databricks.sdk, "WorkspaceClient", lambda *a, **k: type("W", (), {
        "serving_endpoints": Endpoints()})())
    exec(compile(code, "<form code>", "exec"), {"print": lambda *a: None})
    return seen


def test_create_click_and_code_for_external_and_pt(form, ws, monkeypatch):
    form.kind_picker.value = "external"
    idle(form)
    ext = form.external
    ext.model_name.value, ext.api_base.value, ext.scope.value = "gpt-4o-mini", STUB_BASE, "keys"
    idle(form)
    form.gateway.usage.value = True
    line = form.magic_line()
    assert line == (f"%serve create gpt-4o-mini --external openai:gpt-4o-mini --api-base {STUB_BASE} --secret "
                    "keys/openai --usage-tracking")
    seen = run_generated(form.sdk_code(), monkeypatch)
    assert seen["call"] == "create_and_wait" and seen["config"].as_dict()["served_entities"] == [ext.entity()]
    assert seen["ai_gateway"].as_dict() == form.ai_gateway()
    form.create_button.click()
    poll(lambda: form.state == "ready", 10, 0.02, "the form to be ready")
    (sent,) = ws.sent("create")
    assert sent["config"].served_entities[0].external_model.openai_config.openai_api_key == "{{secrets/keys/openai}}"
    assert sent["ai_gateway"].usage_tracking_config.enabled is True

    form.kind_picker.value = "pt"
    form.name.value = "iris-pt"
    form.entities[0].units.value = 30
    seen = run_generated(form.sdk_code(), monkeypatch)
    assert seen["call"] == "create_provisioned_throughput_endpoint_and_wait"
    assert seen["config"].served_entities[0].provisioned_model_units == 30
    assert "--model main.ml.iris --version 1 --pt-units 30 --usage-tracking" in form.magic_line()
    form.create_button.click()
    poll(lambda: form.state == "ready" and ws.sent("create_provisioned_throughput_endpoint"), 10, 0.02, "the PT create")
    (sent,) = ws.sent("create_provisioned_throughput_endpoint")
    assert sent["name"] == "iris-pt" and sent["config"].served_entities[0].provisioned_model_units == 30
