"""Fast tier: chat answers in one shape (`core.chat`), server-sent events (`core.sse`), chat bodies per
task (`core.chat_body`), `ChatStream` over a fake response, and the `%%query` chat rendering helpers."""
from __future__ import annotations

import json
import threading

import pytest

from jupyter_serving.core.chat import ChatCollector, ChatDelta, ToolCall, collect, deltas_of_response, stream_error
from jupyter_serving.core.chat_body import ANSWER_COLUMNS, chat_body, dialect_of, is_chat_body, normalize_messages
from jupyter_serving.core.errors import BackendError, InvalidInputError, QueryError, ServingTimeoutError
from jupyter_serving.core.sse import DONE, SseDecoder

# -- server-sent events ------------------------------------------------------------------------------


def test_sse_payloads_however_the_bytes_are_cut():
    stream = ('data: {"a": "é"}\r\n\r\n: keep-alive\n\nevent: x\ndata: line1\ndata: line2\n\n'
              'data:{"b":1}\n\ndata: [DONE]\n\n').encode()
    whole = SseDecoder().feed(stream)
    assert whole == ['{"a": "é"}', "line1\nline2", '{"b":1}', DONE]
    for size in (1, 2, 3, 7):
        decoder = SseDecoder()
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert [p for piece in pieces for p in decoder.feed(piece)] == whole


def test_sse_a_last_event_without_blank_line_and_bare_cr():
    decoder = SseDecoder()
    assert decoder.feed(b"data: one\r\rdata: two\r") == ["one"]
    assert decoder.close() == ["two"]
    assert SseDecoder().close() == []


# -- the three stream dialects -----------------------------------------------------------------------

CHAT_CHUNKS = [
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "tok0 "}}]},
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "tok1"}}]},
    {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                     "finish_reason": "length"}],
     "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
]
RESPONSES_EVENTS = [
    {"type": "response.output_item.done", "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                                                   "name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"type": "response.output_item.done", "item": {"type": "function_call_output", "call_id": "call_1",
                                                   "output": '{"temperature_c": 21}'}},
    {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "tok0 "},
    {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "tok1"},
    {"type": "response.output_item.done", "item": {"id": "msg_1", "type": "message", "role": "assistant",
                                                   "content": [{"type": "output_text", "text": "tok0 tok1"}]},
     "custom_outputs": {"finish_reason": "stop", "usage": {"prompt_tokens": 2, "completion_tokens": 2}}},
]
CHAT_AGENT_CHUNKS = [
    {"delta": {"role": "assistant", "content": "", "id": "m1",
               "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}},
    {"delta": {"role": "tool", "content": "42", "tool_call_id": "c1", "id": "m2"}},
    {"delta": {"role": "assistant", "content": "tok0 ", "id": "m3"}},
    {"delta": {"role": "assistant", "content": "tok1", "id": "m3"}},
    {"delta": {"role": "assistant", "content": "", "id": "m3"}, "finish_reason": "stop",
     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
]


def _fed(chunks) -> tuple[ChatCollector, list[ChatDelta]]:
    collector = ChatCollector("ep")
    deltas = [d for i, c in enumerate(chunks) for d in collector.feed(c, elapsed_ms=100.0 * (i + 1))]
    return collector, deltas


def test_chat_completion_chunks():
    collector, deltas = _fed(CHAT_CHUNKS)
    assert [d.text for d in deltas] == ["tok0 ", "tok1", ""]
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 2
    answer = collector.answer(total_ms=350.0, served_entity="e-1")
    assert (answer.text, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens) == (
        "tok0 tok1", "length", 4, 2)
    assert (answer.ttft_ms, answer.total_ms, answer.served_entity, answer.streamed) == (100.0, 350.0, "e-1", True)
    assert answer.raw == CHAT_CHUNKS and answer.items[0].kind == "text"


def test_chat_completion_tool_call_pieces_are_merged():
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [
                 {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]},
              {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"x"'}}]}}]},
              {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
    answer = _fed(chunks)[0].answer()
    assert answer.tool_calls == (ToolCall("f", '{"x": 1}', "call_a", 0),)
    assert answer.finish_reason == "tool_calls" and answer.transcript() == '→ f({"x": 1})\n'
    assert answer.frame.loc[0, "tool_calls"] == ['f({"x": 1})']


def test_responses_agent_events_text_once_with_tools_in_order():
    collector, deltas = _fed(RESPONSES_EVENTS)
    assert "".join(d.text for d in deltas) == "tok0 tok1"  # the done message's text is not repeated
    answer = collector.answer(total_ms=600.0)
    assert [i.kind for i in answer.items] == ["tool_call", "tool_result", "text"]
    assert answer.tool_calls[0].id == answer.tool_results[0].call_id == "call_1"
    assert (answer.finish_reason, answer.prompt_tokens, answer.completion_tokens) == ("stop", 2, 2)
    assert answer.ttft_ms == 100.0  # the function call is the first piece
    assert answer.transcript() == ('→ get_weather({"city": "Paris"})\n← get_weather: {"temperature_c": 21}\n'
                                   "tok0 tok1")
    assert list(answer.frame.columns) == ANSWER_COLUMNS + ["tool_calls", "tool_results"]


def test_responses_agent_without_deltas_and_completed_events():
    events = [{"type": "response.output_item.done", "item": {"id": "m", "type": "message", "content": [
                  {"type": "output_text", "text": "whole"}]}},
              {"type": "response.completed", "response": {"status": "completed",
                                                          "usage": {"input_tokens": 5, "output_tokens": 1}}}]
    answer = _fed(events)[0].answer()
    assert (answer.text, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens) == ("whole", "stop", 5, 1)
    incomplete = {"type": "response.incomplete", "response": {"status": "incomplete",
                                                              "incomplete_details": {"reason": "max_output_tokens"}}}
    assert _fed([incomplete])[0].answer().finish_reason == "length"
    assert _fed([{"type": "response.created"}, "not a dict"])[1] == []


def test_chat_agent_chunks_with_a_tool_message():
    answer = _fed(CHAT_AGENT_CHUNKS)[0].answer()
    assert [i.kind for i in answer.items] == ["tool_call", "tool_result", "text"]
    assert answer.text == "tok0 tok1" and answer.finish_reason == "stop" and answer.completion_tokens == 2
    assert answer.transcript().splitlines() == ["→ lookup({})", "← lookup: 42", "tok0 tok1"]


def test_several_choices_are_rows():
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"},
                        {"index": 1, "message": {"role": "assistant", "content": "b"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    answer = collect(deltas_of_response(body), "ep").answer(total_ms=40.0, streamed=False, raw=body)
    frame = answer.frame
    assert list(frame.columns) == ANSWER_COLUMNS
    assert frame[["index", "text", "finish_reason"]].values.tolist() == [[0, "a", "stop"], [1, "b", "length"]]
    assert frame["prompt_tokens"].tolist()[0] == 3 and frame["prompt_tokens"].isna().tolist() == [False, True]
    assert answer.ttft_ms == answer.total_ms == 40.0 and not answer.streamed and answer.raw is body
    assert frame.footer() == "endpoint ep · latency 40 ms"


def test_whole_answers_of_each_dialect():
    responses = {"output": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                            {"type": "function_call_output", "call_id": "c", "output": "1"},
                            {"type": "message", "content": [{"type": "output_text", "text": "done"}]}],
                 "custom_outputs": {"finish_reason": "stop"}}
    answer = collect(deltas_of_response(responses)).answer(streamed=False)
    assert [i.kind for i in answer.items] == ["tool_call", "tool_result", "text"] and answer.finish_reason == "stop"
    agent = {"messages": [{"role": "assistant", "content": "hi", "id": "1"}], "finish_reason": "stop"}
    assert collect(deltas_of_response(agent)).answer().text == "hi"
    assert collect(deltas_of_response({"choices": [{"text": "cmpl", "index": 0}]})).answer().text == "cmpl"
    assert collect(deltas_of_response({"predictions": ["plain"]})).answer().text == "plain"
    assert deltas_of_response({"predictions": [1, 2]}) == [] and deltas_of_response("x")[0].text == "x"


def test_stream_errors():
    assert stream_error({"error_code": "INTERNAL_ERROR", "message": "boom"}) == "INTERNAL_ERROR: boom"
    assert stream_error({"type": "error", "message": "bad"}) == "bad"
    assert stream_error({"type": "response.failed", "response": {"error": {"message": "no"}}}) == "no"
    assert stream_error({"error": {"message": "oops"}}) == "oops"
    assert stream_error(CHAT_CHUNKS[0]) is None and stream_error([]) is None


# -- request bodies ----------------------------------------------------------------------------------


def test_chat_body_per_task():
    chat = chat_body("hi", task="llm/v1/chat", system="sys", temperature=0.2, max_tokens=5, stop="\n", stream=True)
    assert chat == {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
                    "temperature": 0.2, "max_tokens": 5, "stop": ["\n"], "stream": True}
    resp = chat_body([{"role": "user", "content": "hi"}], task="agent/v1/responses", max_tokens=7, temperature=0)
    assert resp == {"input": [{"role": "user", "content": "hi"}], "temperature": 0, "max_output_tokens": 7}
    agent = chat_body("hi", task="agent/v2/chat", max_tokens=3, extra={"custom_inputs": {"tokens": 2}})
    assert agent == {"messages": [{"role": "user", "content": "hi"}], "custom_inputs": {"max_tokens": 3, "tokens": 2}}
    completions = chat_body("one two", task="llm/v1/completions", system="s", max_tokens=2)
    assert completions == {"prompt": "s\none two", "max_tokens": 2}


def test_chat_body_from_a_whole_body_and_pairs():
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True, "custom_inputs": {"a": 1}}
    sent = chat_body(body, task="agent/v1/responses", extra={"custom_inputs": {"b": 2}, "client_request_id": "r"})
    assert sent == {"input": [{"role": "user", "content": "x"}], "custom_inputs": {"a": 1, "b": 2},
                    "client_request_id": "r"}  # messages became input; no stream unless asked
    assert chat_body({"input": [{"role": "user", "content": "y"}]})["input"][0]["content"] == "y"  # no task
    assert normalize_messages([("system", "s"), "u"]) == [{"role": "system", "content": "s"},
                                                          {"role": "user", "content": "u"}]
    assert dialect_of(None) == "chat" and dialect_of("agent/v2/chat") == "chat_agent"


@pytest.mark.parametrize("call, message", [
    (lambda: chat_body("x", task="llm/v1/embeddings"), "serves embeddings"),
    (lambda: chat_body("x", task="agent/v1/responses", stop="s"), "takes no stop sequences"),
    (lambda: chat_body([], task=None), "No messages to send"),
    (lambda: chat_body([{"content": "no role"}]), "Message 1 is not a chat message"),
    (lambda: chat_body("x", max_tokens=0), "max_tokens must be a positive integer"),
    (lambda: chat_body("x", stop=[""]), "Stop sequences must be non-empty strings"),
])
def test_chat_body_errors_are_one_line(call, message):
    with pytest.raises(InvalidInputError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_is_chat_body():
    assert is_chat_body({"messages": []}) and is_chat_body({"input": [{"role": "user", "content": "x"}]})
    assert not is_chat_body({"input": ["a", "b"]}) and not is_chat_body({"dataframe_records": []})
    assert not is_chat_body(None)


# -- ChatStream over a fake HTTP response ------------------------------------------------------------


class FakeResponse:
    """What `requests` gives `ChatStream`: `iter_content` pieces (from a list, or blocking on an event)."""

    def __init__(self, pieces, block: threading.Event | None = None):
        self.pieces, self.block, self.closed = pieces, block, False

    def iter_content(self, chunk_size=None):
        for piece in self.pieces:
            if isinstance(piece, Exception):
                raise piece
            yield piece
        if self.block is not None:
            self.block.wait(10)
            if self.closed:
                raise AttributeError("'NoneType' object has no attribute 'read'")  # what a closed urllib3 raises

    def close(self):
        self.closed = True
        if self.block is not None:
            self.block.set()


def _stream(pieces, block=None):
    import time

    from jupyter_serving.client.chat_stream import ChatStream
    from jupyter_serving.core.errors import Hint

    return ChatStream(FakeResponse(pieces, block), name="ep", started=time.perf_counter(), served_entity="e",
                      timeout=5.0, logs_hint=Hint("see the logs"), on_transport_error=lambda err: BackendError(str(err)))


def _events(chunks) -> list[bytes]:
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def test_chat_stream_yields_deltas_then_the_answer():
    stream = _stream(_events(CHAT_CHUNKS))
    assert [d.text for d in stream] == ["tok0 ", "tok1", ""]
    assert stream.answer.text == "tok0 tok1" and stream.answer.served_entity == "e" and not stream.answer.stopped
    assert stream.response.closed and list(stream) == []


def test_chat_stream_closed_from_another_thread():
    block = threading.Event()
    stream = _stream(_events(CHAT_CHUNKS[:1])[:1], block)
    assert next(stream).text == "tok0 "
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(stream))
    reader.start()
    stream.close()
    reader.join(5)
    assert not reader.is_alive() and got == []
    assert stream.answer.stopped and stream.answer.text == "tok0 "


def test_chat_stream_failures():
    import requests

    with pytest.raises(QueryError, match="Endpoint 'ep' failed mid-stream: INTERNAL_ERROR: boom. see the logs"):
        list(_stream(_events([CHAT_CHUNKS[0], {"error_code": "INTERNAL_ERROR", "message": "boom"}])))
    with pytest.raises(BackendError, match="streamed something that is not JSON"):
        list(_stream([b"data: {nope\n\n"]))
    with pytest.raises(ServingTimeoutError, match="sent nothing for 5 s mid-stream"):
        list(_stream([requests.ReadTimeout("read timed out")]))
    with pytest.raises(BackendError, match="broke off"):
        list(_stream([requests.exceptions.ChunkedEncodingError("Response ended prematurely")]))


def test_whole_answer_stream():
    import time

    from jupyter_serving.client.chat_stream import WholeAnswerStream
    from jupyter_serving.core.errors import Hint

    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "all"}, "finish_reason": "stop"}]}
    stream = WholeAnswerStream(body, name="ep", started=time.perf_counter(), served_entity=None, timeout=1.0,
                               logs_hint=Hint(""), on_transport_error=lambda e: BackendError(str(e)))
    assert [d.text for d in stream] == ["all"] and stream.answer.text == "all" and stream.answer.raw == [body]


# -- the %%query chat rendering ----------------------------------------------------------------------


def test_live_text_updates_one_display_in_a_kernel(monkeypatch):
    from jupyter_serving.magics.chat_query import LiveText
    from tests.fake_kernel import fake_kernel_display

    shown = fake_kernel_display(monkeypatch)
    live = LiveText()
    live.update("")
    live.update("a")
    live.update("ab")  # within 30 ms of the last: skipped, shown by finish
    live.finish("ab", "(stopped: interrupted)")
    assert shown == [{"text/plain": "a"}, {"text/plain": "ab\n(stopped: interrupted)"}]


def test_live_text_prints_outside_a_kernel(capsys):
    from jupyter_serving.magics.chat_query import LiveText

    live = LiveText()
    for text in ("a", "ab", "ab\n→ f()\n"):
        live.update(text)
    live.finish("ab\n→ f()\n")
    assert capsys.readouterr().out == "ab\n→ f()\n\n"


def test_cell_fields_and_the_user_turn():
    from types import SimpleNamespace

    from jupyter_serving.magics.chat_query import _with_turn, cell_fields, wants_chat

    assert cell_fields('{"custom_inputs": {"k": $k}}', {"k": 3}) == {"custom_inputs": {"k": 3}}
    assert cell_fields("$fields", {"fields": {"a": 1}}) == {"a": 1} and cell_fields("  ", {}) == {}
    with pytest.raises(InvalidInputError, match="Malformed cell body at line 1"):
        cell_fields("{nope", {})
    with pytest.raises(InvalidInputError, match="Unknown variable \\$missing"):
        cell_fields("$missing", {})
    assert _with_turn({"input": [{"role": "user", "content": "a"}]}, "b")["input"][-1] == {"role": "user",
                                                                                         "content": "b"}
    assert _with_turn({}, "b") == {"messages": [{"role": "user", "content": "b"}]}
    no_chat = SimpleNamespace(chat=None)
    assert wants_chat(SimpleNamespace(chat="hi"), None, lambda: 1 / 0)
    assert not wants_chat(no_chat, {"dataframe_records": []}, lambda: 1 / 0)  # no task read for other bodies
    assert wants_chat(no_chat, {"messages": [], "stream": True}, lambda: None)
    assert wants_chat(no_chat, {"messages": []}, lambda: "agent/v1/chat")
    assert not wants_chat(no_chat, {"messages": []}, lambda: None)
