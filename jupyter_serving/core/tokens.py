"""Token counts and the text of GenAI requests, answers and stream chunks (pure: no I/O).

Databricks counts tokens with the served model's own tokenizer, and when a model reports no usage it
estimates them as `(text_length + 1) / 4` (docs: "Configure AI Gateway on model serving endpoints",
usage tracking). `count_tokens` is a local estimate of the same kind, not a tokenizer: the text is cut
into word pieces (`\\w+`) and single punctuation marks (`[^\\w\\s]`), and a word counts one token per
six characters started (`"tokenizer"`: 2, `"internationalization"`: 4). For English prose that is
close to what BPE tokenizers give (common words are one token, about 1.3 tokens a word overall).
Unlike a length formula it is additive over the chunks of a stream (each chunk is counted on its
own), so a streamed answer counts about what the same answer counts whole.

When a model reports `usage`, its counts win (`usage_of`); the estimate is only the fallback.

The `*_text` functions pull out the text a request or an answer carries, whatever its schema: chat
(`messages`, `choices[].message`), completions (`prompt`, `choices[].text`), embeddings (`input`),
MLflow's ChatAgent (`messages`) and ResponsesAgent (`input` items, `output` items), and their stream
chunks. Tabular requests (`dataframe_records`, `dataframe_split`, `instances`, `inputs`) carry no
prompt: their text is their JSON, so that guardrails and token counts still see what was sent.
"""
from __future__ import annotations

import json
import re
from typing import Any

_PIECES = re.compile(r"\w+|[^\w\s]")
WORD_CHARS_PER_TOKEN = 6
TABULAR_KEYS = ("dataframe_records", "dataframe_split", "instances", "inputs")


def count_tokens(text: str | None) -> int:
    """An estimate of how many tokens `text` is (see the module docstring)."""
    if not text:
        return 0
    total = 0
    for piece in _PIECES.findall(text):
        total += -(-len(piece) // WORD_CHARS_PER_TOKEN)
    return total


def _join(parts: list[str]) -> str:
    return "\n".join(p for p in parts if p)


def _content_text(content: Any) -> str:
    """A message's `content`: a string, or a list of content parts (`{"type": "text", "text": ...}`)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return _join(parts)
    return ""


def _messages_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    return _join([_content_text(m.get("content")) for m in messages if isinstance(m, dict)])


def _strings_text(value: Any) -> str:
    """A string, or the strings of a list (a batch of prompts or of embedding inputs)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _join([v for v in value if isinstance(v, str)])
    return ""


def _input_items_text(items: Any) -> str:
    """ResponsesAgent `input`: a string, or items (`{"role", "content"}` messages, function-call outputs)."""
    if not isinstance(items, list):
        return _strings_text(items)
    parts = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            parts.append(_content_text(item.get("content")))
            if isinstance(item.get("output"), str):  # function_call_output
                parts.append(item["output"])
    return _join(parts)


def request_text(body: Any) -> str:
    """The text a query carries: its prompt or messages; the JSON of tabular input; "" otherwise."""
    if not isinstance(body, dict):
        return ""
    if "messages" in body:
        return _messages_text(body["messages"])
    if "prompt" in body:
        return _strings_text(body["prompt"])
    if "input" in body:
        return _input_items_text(body["input"])
    for key in TABULAR_KEYS:
        if key in body:
            try:
                return json.dumps(body[key], separators=(",", ":"), default=str)
            except (TypeError, ValueError, RecursionError):
                return ""
    return ""


def _output_items_text(items: Any) -> str:
    """ResponsesAgent `output`: the `output_text` parts of its message items."""
    if not isinstance(items, list):
        return ""
    parts = []
    for item in items:
        if not isinstance(item, dict):
            continue
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return _join(parts)


def _choices_text(choices: Any, field: str) -> str:
    """`choices[].message.content` (field "message"), `choices[].delta.content` ("delta") or `choices[].text`."""
    if not isinstance(choices, list):
        return ""
    parts = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        inner = choice.get(field)
        if isinstance(inner, dict):
            parts.append(_content_text(inner.get("content")))
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return _join(parts)


def response_text(body: Any) -> str:
    """The text an answer carries: chat, completions, ResponsesAgent or ChatAgent; "" for embeddings and
    tabular predictions."""
    if not isinstance(body, dict):
        return ""
    if "choices" in body:
        return _choices_text(body["choices"], "message")
    if "output" in body:
        return _output_items_text(body["output"])
    if "messages" in body:  # ChatAgent
        return _messages_text(body["messages"])
    return ""


def chunk_text(chunk: Any) -> str:
    """The text of one stream chunk: chat (`choices[].delta.content`), completions (`choices[].text`),
    a ResponsesAgent event (`response.output_text.delta`) or a ChatAgent chunk (`delta.content`)."""
    if not isinstance(chunk, dict):
        return ""
    if "choices" in chunk:
        return _choices_text(chunk["choices"], "delta")
    if chunk.get("type") == "response.output_text.delta":
        delta = chunk.get("delta")
        return delta if isinstance(delta, str) else ""
    delta = chunk.get("delta")
    if isinstance(delta, dict):
        return _content_text(delta.get("content"))
    return ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_of(body: Any) -> tuple[int, int] | None:
    """(input, output) tokens an answer or chunk reports: OpenAI's `usage.prompt_tokens` /
    `completion_tokens`, or `input_tokens` / `output_tokens` (ResponsesAgent, also inside a
    `response.completed` event's `response`); None when it reports none."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if not isinstance(usage, dict) and isinstance(body.get("response"), dict):
        usage = body["response"].get("usage")
    if not isinstance(usage, dict):
        return None
    for inp, out in (("prompt_tokens", "completion_tokens"), ("input_tokens", "output_tokens")):
        tokens_in, tokens_out = _count(usage.get(inp)), _count(usage.get(out))
        if tokens_in is not None or tokens_out is not None:
            return tokens_in or 0, tokens_out or 0
    return None


__all__ = ["chunk_text", "count_tokens", "request_text", "response_text", "usage_of"]
