"""The chat playground, headless: traits and clicks driven in-process against the real local backend
and its paced GenAI models (tests/genai_models.py: `custom_inputs` {"ttft_ms", "itl_ms", "tokens"}).

The streams arrive while the test thread works: every wait polls with a deadline, nothing sleeps to
synchronize. Each test serves its own endpoints and deletes them.
"""
from __future__ import annotations

import html
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from jupyter_serving import api
from jupyter_serving.widgets import ChatPlayground
from tests.conftest import poll, unique

pytestmark = pytest.mark.timeout(300)

HELLO = [{"role": "user", "content": "hi"}]


def paced(ttft_ms: int = 0, itl_ms: int = 0, tokens: int = 8) -> dict:
    return {"custom_inputs": {"ttft_ms": ttft_ms, "itl_ms": itl_ms, "tokens": tokens}}


def text_of(value: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", value))).strip()


def shown(column) -> str:
    """The latest answer's text as the widget draws it (its HTML, tags stripped)."""
    match = re.search(r'class="jupyter-serving-chat-text">(.*?)</span>', column.last_html(), re.S)
    return html.unescape(match.group(1)) if match else ""


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


@pytest.fixture
def serve(client):
    """serve(model, prefix, entities=None) -> a READY endpoint's name; deleted after the test."""
    made: list[str] = []

    def make(model: dict, prefix: str = "chat", names: tuple[str, ...] = ()) -> str:
        name = unique(prefix)
        made.append(name)
        if names:
            config = {"served_entities": [
                {"name": n, "entity_name": model["name"], "entity_version": model["version"],
                 "workload_size": "Small", "scale_to_zero_enabled": False} for n in names],
                "traffic_config": {"routes": [{"served_model_name": n, "traffic_percentage": 100 // len(names)
                                               + (100 % len(names) if i == 0 else 0)} for i, n in enumerate(names)]}}
            client.create(name, config, timeout=240)
        else:
            client.create(name, model=model["name"], version=model["version"], timeout=240)
        return name

    yield make
    for name in made:
        try:
            client.delete(name)
        except api.ServingError:
            pass


def loaded(playground: ChatPlayground) -> ChatPlayground:
    poll(lambda: all(c.loaded for c in playground.columns), 30, 0.02, "the columns to read their endpoints")
    return playground


def done(playground: ChatPlayground, timeout: float = 60) -> ChatPlayground:
    poll(lambda: not playground.busy, timeout, 0.02, "the answers to end")
    assert playground.wait(10)
    return playground


# --------------------------------------------------------------------------------------------------
# streaming


def test_the_answer_grows_in_the_widget_while_the_test_runs(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model)
    pg = loaded(ChatPlayground(name, client=client, extra=paced(ttft_ms=100, itl_ms=250, tokens=8)))
    column = pg.columns[0]
    assert column.task == "agent/v1/chat" and "chat model" in column.title.value
    pg.input.value = "hello"
    started = time.monotonic()
    pg.send_button.click()
    assert time.monotonic() - started < 1.0 and pg.busy  # the click returned: the kernel is free
    assert pg.input.value == "" and pg.stop_button.disabled is False and pg.send_button.disabled
    first = poll(lambda: shown(column), 30, 0.01, "the first token in the widget")
    assert first.startswith("tok0") and "tok7" not in first and column.streaming  # not complete yet
    assert "streaming" in column.last_html()
    middle = poll(lambda: (lambda t: t if len(t) > len(first) else None)(shown(column)), 30, 0.01,
                  "more tokens")
    assert "tok7" not in middle
    done(pg)
    answer = column.answers[0]
    assert shown(column) == answer.text == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert answer.state == "done" and answer.tokens == 8 and answer.finish_reason == "stop"
    assert answer.ttft_ms is not None and 80 <= answer.ttft_ms < answer.latency_ms
    stats = text_of(column.last_html())
    assert "8 tokens" in stats and re.search(r"TTFT \d+ ms", stats) and "finish: stop" in stats
    assert answer.served_entity and f"served by {answer.served_entity}" in stats
    assert pg.stop_button.disabled and not pg.send_button.disabled


def test_multi_turn_with_enter_system_prompt_and_options(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model)
    pg = loaded(ChatPlayground(name, client=client, system="Answer briefly.", max_tokens=3,
                               extra=paced(tokens=6)))
    pg.input.value = "first"
    pg.input._handle_custom_msg({"event": "submit"}, [])  # what Enter in the input sends
    done(pg)
    first = pg.columns[0].answers[0]
    assert first.text == "tok0 tok1 tok2" and first.finish_reason == "length" and first.tokens == 3
    pg.max_tokens.value = ""
    pg.input.value = "echo: second answer"
    pg.input._handle_custom_msg({"event": "submit"}, [])
    done(pg)
    second = pg.columns[0].answers[1]
    assert second.text == "second answer"
    # the second request carried the first turn (the system prompt goes as system=)
    assert second.request == [{"role": "user", "content": "first"},
                              {"role": "assistant", "content": "tok0 tok1 tok2"},
                              {"role": "user", "content": "echo: second answer"}]
    assert pg.turns == 2 and len(pg.columns[0].conversation.children) == 4
    pg.clear_button.click()
    assert pg.turns == 0 and pg.columns[0].conversation.children == () and pg.columns[0].messages() == []


def test_invalid_options_say_so_and_send_nothing(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model)
    pg = loaded(ChatPlayground(name, client=client))
    pg.temperature.value = "hot"
    pg.input.value = "hello"
    pg.send_button.click()
    assert not pg.busy and pg.turns == 0 and "Temperature must be a number" in pg.notice
    assert "Temperature must be a number" in text_of(pg.message.value)
    pg.temperature.value = "0.2"
    pg.extra.value = "{not json"
    pg.send_button.click()
    assert pg.turns == 0 and "Extra body is not JSON" in pg.notice
    pg.extra.value = ""
    pg.send_button.click()
    assert pg.turns == 1 and pg.notice == ""
    done(pg)


# --------------------------------------------------------------------------------------------------
# stop


def _hold_slots(url: str, headers: dict, name: str, count: int) -> list:
    """`count` slow streams that hold the endpoint's concurrency slots (each has sent its first chunk).
    Their line iterators are kept: a dropped one closes its connection (urllib3 on GeneratorExit)."""
    body = {"messages": HELLO, "stream": True, **paced(itl_ms=2000, tokens=30)}
    held = []
    for _ in range(count):
        resp = requests.post(f"{url}/serving-endpoints/{name}/invocations", json=body, stream=True,
                             headers=headers, timeout=60)
        assert resp.status_code == 200, resp.text
        lines = resp.iter_lines()
        next(line for line in lines if line)
        held.append((resp, lines))
    return held


def test_stop_cancels_the_stream_keeps_the_partial_answer_and_frees_the_slot(client, serve, delayed_chat_model,
                                                                              local_backend):
    name = serve(delayed_chat_model)
    headers = {"Authorization": f"Bearer {local_backend.token}"}
    url = local_backend.url

    def query() -> int:
        return requests.post(f"{url}/serving-endpoints/{name}/invocations", headers=headers, timeout=30,
                             json={"messages": HELLO, "max_tokens": 1}).status_code

    pg = loaded(ChatPlayground(name, client=client, extra=paced(itl_ms=1500, tokens=40)))
    column = pg.columns[0]
    held = _hold_slots(url, headers, name, 3)  # Small serves 4 at once: the playground takes the 4th
    try:
        pg.ask("tell me a long story")
        poll(lambda: shown(column).startswith("tok0"), 30, 0.01, "the first token")
        assert query() == 429  # every slot is taken, the playground's stream holds one
        pg.stop_button.click()
        poll(lambda: not column.streaming, 10, 0.01, "the stream to stop")
        partial = column.answers[0]
        assert partial.state == "stopped" and partial.text.startswith("tok0") and "tok39" not in partial.text
        assert "stopped" in text_of(column.last_html()) and shown(column) == partial.text
        # the slot is free again: a query right after is answered (the other three still stream)
        assert poll(lambda: query() == 200, 5, 0.05, "the stopped stream's slot to be free")
        assert column.answers[0].text == partial.text and shown(column) == partial.text  # stopped growing
        assert not pg.busy and not pg.send_button.disabled
        # the partial answer stays in the conversation
        assert column.messages("next")[-2] == {"role": "assistant", "content": partial.text}
    finally:
        for resp, _ in held:
            resp.close()
    # the next prompt answers in full (the stopped stream was closed cleanly on the model's side)
    pg.extra.value = ""
    pg.ask("echo: and now in full")
    done(pg)
    assert column.answers[1].text == "and now in full" and column.answers[1].state == "done"


# --------------------------------------------------------------------------------------------------
# side by side


def test_two_endpoints_stream_side_by_side_at_once(client, serve, delayed_chat_model, chat_agent_model):
    chat, agent = serve(delayed_chat_model, "chatm"), serve(chat_agent_model, "chata")
    pg = loaded(ChatPlayground(chat, agent, client=client, extra=paced(ttft_ms=100, itl_ms=200, tokens=6)))
    left, right = pg.columns
    assert (left.task, right.task) == ("agent/v1/chat", "agent/v2/chat")
    assert [c.name for c in pg.columns] == [chat, agent] and len(pg.columns_box.children) == 2
    pg.ask("hello")
    # both first tokens arrive before either answer is complete: they stream concurrently
    poll(lambda: shown(left).startswith("tok0") and shown(right).startswith("tok0"), 30, 0.01,
         "both first tokens")
    assert left.streaming and right.streaming
    assert "tok5" not in shown(left) and "tok5" not in shown(right)
    done(pg)
    for column in pg.columns:
        answer = column.answers[0]
        assert answer.text == "tok0 tok1 tok2 tok3 tok4 tok5" and answer.state == "done"
        assert answer.ttft_ms is not None and answer.tokens == 6
        assert "TTFT" in text_of(column.last_html())


def test_served_entities_of_one_endpoint_compared(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model, "chatab", names=("blue", "green"))
    pg = loaded(ChatPlayground(f"{name}/blue", client=client, extra=paced(tokens=2)))
    first = pg.columns[0]
    assert first.entity == "blue" and first.picker.layout.display != "none"
    assert [v for _, v in first.picker.options] == ["", "blue", "green"]
    second = pg.add_column()  # the same endpoint, at the entity no column shows yet
    assert second.target == f"{name}/green" and len(pg.columns) == 2
    loaded(pg)
    assert second.picker.value == "green"
    pg.ask("hello")
    done(pg)
    assert [c.answers[0].served_entity for c in pg.columns] == ["blue", "green"]
    assert "served by green" in text_of(second.last_html())
    first.picker.value = ""  # the traffic split
    assert first.entity is None
    pg.remove_column(second)
    assert len(pg.columns) == 1 and first.remove_button.layout.display == "none"


def test_agent_tool_calls_and_results_are_rendered(client, serve, responses_agent_model):
    name = serve(responses_agent_model, "chatr")
    pg = loaded(ChatPlayground(name, client=client, extra=paced(tokens=3)))
    column = pg.columns[0]
    assert column.task == "agent/v1/responses" and "responses agent" in column.title.value
    pg.ask("call tool: what is the weather in Paris?")
    done(pg)
    answer = column.answers[0]
    assert [t.kind for t in answer.tools] == ["call", "result"]
    assert answer.tools[0].name == "get_weather" and '"city": "Paris"' in answer.tools[0].arguments
    page = column.last_html()
    assert "jupyter-serving-chat-tool" in page and "jupyter-serving-chat-tool-result" in page
    assert 'get_weather ({"city": "Paris"})' in text_of(page) or 'get_weather({"city": "Paris"})' in text_of(page)
    assert "get_weather: {&quot;temperature_c&quot;: 21}" in page or "temperature_c" in text_of(page)
    assert answer.text == "tok0 tok1 tok2"
    frame = pg.transcript()
    assert list(frame["role"]) == ["user", "tool_call", "tool_result", "assistant"]
    assert frame.loc[1, "text"].startswith("get_weather(")


# --------------------------------------------------------------------------------------------------
# code and transcript


def test_show_code_reproduces_the_last_request(client, serve, delayed_chat_model, backend_home):
    name = serve(delayed_chat_model)
    pg = loaded(ChatPlayground(name, client=client, system="Be brief.", temperature=0.5, stop=["###"],
                               extra=paced(tokens=3)))
    pg.ask("hello")
    done(pg)
    pg.ask("echo: once more")
    done(pg)
    pg.code_button.value = True
    assert pg.code.layout.display is None and pg.code_button.description == "Hide code"
    code = pg.code_text()
    assert "chat.completions.create(" in code and f"model={name!r}" in code and "stream=True" in code
    assert "{'role': 'system', 'content': 'Be brief.'}" in code and "'content': 'tok0 tok1 tok2'" in code
    assert "temperature=0.5" in code and "stop=['###']" in code and "extra_body=" in code
    assert "once more" in text_of(pg.code.value)
    # the code runs as it is, without the playground, and answers what the playground got
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "once more"
    pg.code_button.value = False
    assert pg.code.layout.display == "none"


def test_agent_code_uses_client_chat(client, serve, chat_agent_model):
    name = serve(chat_agent_model, "chatc")
    pg = loaded(ChatPlayground(name, client=client, extra=paced(tokens=2)))
    pg.ask("hello")
    done(pg)
    code = pg.code_text()
    assert f"client.chat({name!r}, messages" in code and "chat.completions" not in code
    assert "custom_inputs=" in code and "client = api.connect(" in code
    assert f"# It posts to /serving-endpoints/{name}/invocations" in code and "'stream': True" in code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "tok0 tok1"  # the same answer as the playground's


def test_transcript_dataframe_and_save_button(client, serve, delayed_chat_model, chat_agent_model):
    chat, agent = serve(delayed_chat_model, "chatm"), serve(chat_agent_model, "chata")
    pg = loaded(ChatPlayground(chat, agent, client=client, system="sys", extra=paced(tokens=2)))
    pg.ask("one")
    done(pg)
    pg.ask("echo: two")
    done(pg)
    frame = pg.transcript()
    assert list(frame.columns) == ["turn", "role", "endpoint", "entity", "text", "tokens", "ttft_ms",
                                   "latency_ms", "finish_reason"]
    assert list(frame["role"]) == ["system", "user", "assistant", "assistant", "user", "assistant", "assistant"]
    assert list(frame["turn"]) == [0, 1, 1, 1, 2, 2, 2]
    answers = frame[frame["role"] == "assistant"]
    assert list(answers["endpoint"]) == [chat, agent, chat, agent]
    assert list(answers["text"]) == ["tok0 tok1", "tok0 tok1", "two", "two"]
    assert answers["tokens"].notna().all() and (answers["ttft_ms"] > 0).all()
    assert (answers["latency_ms"] >= answers["ttft_ms"]).all() and set(answers["finish_reason"]) == {"stop"}
    assert answers["entity"].notna().all()  # the entity that served each answer
    pg.save_button.click()
    assert pg.saved is not None and pg.saved.equals(frame)
    assert "Saved the transcript (7 rows)" in text_of(pg.saved_view.value)


# --------------------------------------------------------------------------------------------------
# failures: one line, never a traceback


def test_a_deleted_endpoint_is_one_line_in_its_column(client, serve, delayed_chat_model):
    alive, gone = serve(delayed_chat_model, "chatok"), serve(delayed_chat_model, "chatgone")
    pg = loaded(ChatPlayground(alive, gone, client=client, extra=paced(tokens=2)))
    client.delete(gone)
    pg.ask("hello")
    done(pg)
    ok, failed = pg.columns
    assert ok.answers[0].text == "tok0 tok1" and ok.state == "done"
    assert failed.state == "failed" and f"No serving endpoint named '{gone}'" in failed.error
    line = text_of(failed.last_html())
    assert f"No serving endpoint named '{gone}'" in line and "Traceback" not in failed.last_html()
    assert "\n" not in failed.error
    # the failed turn is left out of that column's conversation
    assert failed.messages("again") == [{"role": "user", "content": "again"}]


def test_a_missing_entity_and_a_missing_endpoint_say_so_before_sending(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model)
    pg = loaded(ChatPlayground(f"{name}/nope", "no-such-endpoint-x", client=client))
    entity_col, missing_col = pg.columns
    assert "has no served entity 'nope'" in text_of(entity_col.notice.value)
    assert "No serving endpoint named 'no-such-endpoint-x'" in text_of(missing_col.notice.value)
    pg.ask("hello")
    done(pg)
    assert entity_col.state == "failed" and "Traceback" not in entity_col.last_html()
    assert missing_col.state == "failed" and "No serving endpoint named" in missing_col.error


def test_the_playground_takes_at_most_three_endpoints():
    with pytest.raises(ValueError, match="at most 3"):
        ChatPlayground("a", "b", "c", "d", client=object())
    with pytest.raises(TypeError, match="client="):
        ChatPlayground("a", object())


def test_threads_do_not_outlive_the_answer(client, serve, delayed_chat_model):
    name = serve(delayed_chat_model)
    before = {t.name for t in threading.enumerate()}
    pg = loaded(ChatPlayground(name, client=client, extra=paced(tokens=2)))
    pg.ask("hello")
    done(pg)
    poll(lambda: not [t for t in threading.enumerate() if t.name.startswith("serving-chat")
                      and t.name not in before and t.is_alive()], 10, 0.02, "the stream threads to end")


# --------------------------------------------------------------------------------------------------
# %serve chat


def test_serve_chat_magic(client, serve, delayed_chat_model):
    from tests.magic_helpers import ok, one_line_error, run, shell

    name = serve(delayed_chat_model)
    ip = shell()
    ran = ok(ip, f"%serve chat {name} --system 'Be brief.' --max-tokens 2 --stop END -o pg")
    pg = ran.value
    assert isinstance(pg, ChatPlayground) and ip.user_ns["pg"] is pg
    assert [c.name for c in pg.columns] == [name] and pg.system.value == "Be brief."
    assert pg.max_tokens.value == "2" and pg.stop_words.value == "END"
    loaded(pg)
    pg.ask("hello")
    done(pg)
    assert pg.columns[0].answers[0].text == "tok0 tok1"
    missing = one_line_error(run(ip, f"%serve chat {name}x"))
    assert f"'{name}x' does not exist" in missing and f"Run `%serve chat {name}`" in missing  # did you mean
    too_many = one_line_error(run(ip, "%serve chat a b c d"))
    assert "at most 3" in too_many
    assert "chat" in ok(ip, "%serve help").out
