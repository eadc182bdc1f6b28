"""core.tokens: the token estimate and the text of requests, answers and stream chunks (no backend)."""
from __future__ import annotations

import pytest

from jupyter_serving.core.tokens import chunk_text, count_tokens, request_text, response_text, usage_of


@pytest.mark.parametrize("text, tokens", [
    ("", 0), (None, 0), ("hi", 1), ("Hello, world!", 4), ("tokenizer", 2), ("internationalization", 4),
    ("a b  c\n", 3), ("naïve café", 2), ("3.14", 3),
])
def test_count_tokens(text, tokens):
    assert count_tokens(text) == tokens


def test_count_tokens_is_additive_over_chunks_split_at_spaces():
    text = "The quick brown fox jumps over the lazy dog, twice."
    pieces = ["The quick", " brown fox", " jumps over", " the lazy dog", ", twice."]
    assert "".join(pieces) == text
    assert sum(count_tokens(p) for p in pieces) == count_tokens(text)


def test_count_tokens_is_close_to_words_for_prose():
    words = "we serve models locally with the same api as databricks model serving".split()
    assert len(words) <= count_tokens(" ".join(words)) <= 2 * len(words)


@pytest.mark.parametrize("body, text", [
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}, "Be brief.\nHi"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url",
                                                                                   "image_url": {"url": "x"}}]}]},
     "Look"),
    ({"prompt": "Once upon"}, "Once upon"),
    ({"prompt": ["a", "b"]}, "a\nb"),
    ({"input": "embed me"}, "embed me"),
    ({"input": ["one", "two"]}, "one\ntwo"),
    ({"input": [{"role": "user", "content": "Q?"}, {"type": "function_call_output", "call_id": "1",
                                                     "output": "42"}]}, "Q?\n42"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "parts"}]}]}, "parts"),
    ({"dataframe_records": [{"x": 1}]}, '[{"x":1}]'),
    ({"dataframe_split": {"columns": ["x"], "data": [[1]]}}, '{"columns":["x"],"data":[[1]]}'),
    ({"params": {}}, ""),
    ([1, 2], ""),
])
def test_request_text(body, text):
    assert request_text(body) == text


@pytest.mark.parametrize("body, text", [
    ({"choices": [{"message": {"role": "assistant", "content": "echo: hi"}}]}, "echo: hi"),
    ({"choices": [{"text": "completion"}, {"text": "second"}]}, "completion\nsecond"),
    ({"output": [{"type": "message", "content": [{"type": "output_text", "text": "agent says"}]},
                 {"type": "function_call", "name": "f", "arguments": "{}"}]}, "agent says"),
    ({"messages": [{"role": "assistant", "content": "chat agent"}]}, "chat agent"),
    ({"data": [{"embedding": [0.1, 0.2]}], "object": "list"}, ""),
    ({"predictions": [0, 1]}, ""),
    ({"choices": [{"message": {"content": None}}]}, ""),
])
def test_response_text(body, text):
    assert response_text(body) == text


@pytest.mark.parametrize("chunk, text", [
    ({"choices": [{"delta": {"content": "tok"}}]}, "tok"),
    ({"choices": [{"delta": {"role": "assistant"}}]}, ""),
    ({"choices": [{"text": "piece"}]}, "piece"),
    ({"type": "response.output_text.delta", "item_id": "1", "delta": "agent"}, "agent"),
    ({"type": "response.output_item.done", "item": {}}, ""),
    ({"delta": {"role": "assistant", "content": "chat agent chunk"}}, "chat agent chunk"),
    ("data", ""),
])
def test_chunk_text(chunk, text):
    assert chunk_text(chunk) == text


@pytest.mark.parametrize("body, usage", [
    ({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}, (5, 7)),
    ({"usage": {"input_tokens": 3, "output_tokens": 4}}, (3, 4)),
    ({"type": "response.completed", "response": {"usage": {"input_tokens": 1, "output_tokens": 2}}}, (1, 2)),
    ({"usage": {"prompt_tokens": 9}}, (9, 0)),
    ({"usage": {"prompt_tokens": True, "completion_tokens": -1}}, None),
    ({"usage": None}, None),
    ({}, None),
    (None, None),
])
def test_usage_of(body, usage):
    assert usage_of(body) == usage
