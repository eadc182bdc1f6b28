"""AI guardrails: `invalid_keywords`, `valid_topics` and `pii` on a query's input and its answer.

What each guardrail looks at: the text a query or an answer carries (chat `messages[].content`,
completions `prompt` / `choices[].text`, `input`, ResponsesAgent items, ChatAgent messages); for
tabular queries and predictions, every string value in them.

- `invalid_keywords`: a keyword found as a whole word, case-insensitively, blocks (Databricks: "keyword
  or string matching").
- `valid_topics` (input only, as on Databricks): Databricks asks an LLM whether the request's topic is
  one of them. Locally the check is lexical: the request (a chat's user messages) is on topic when it
  contains a content word of some topic (case-insensitive, whole words, a plural `s` ignored, stop
  words left out); otherwise it is blocked as off topic.
- `pii` (`behavior` BLOCK or MASK; NONE is off): see `pii` for what is detected. MASK replaces each
  finding with `<ENTITY_TYPE>` and forwards (or answers) the masked text; BLOCK refuses.
- `safety` (Databricks: Llama Guard) is refused when configured (the models module says so); no local
  model can decide it.

A blocked query answers what Databricks answers: HTTP 400 with `finishReason`
`input_guardrail_triggered` and the verdicts in `input_guardrail` (`invalid_keywords`,
`pii_detection`, `off_topic`, `anonymized_input`: each null when that guardrail is not configured),
plus `error_code` BAD_REQUEST and a `message` naming what fired. A blocked answer is the same with
`output_guardrail` / `output_guardrail_triggered` (by symmetry: not seen documented). Output guardrails
do not apply to streamed answers (nor on Databricks).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from jupyter_serving.core.tokens import TABULAR_KEYS
from jupyter_serving.local.aigateway import pii
from jupyter_serving.local.aigateway.errors import AiGatewayError

STOP_WORDS = frozenset("""a an and any are as at be by for from how i in into is it me my of on or our
the their this to us we what when where which who why with you your about""".split())
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Side:
    """The compiled guardrails of one side (input or output)."""

    keywords: re.Pattern | None
    topics: tuple[frozenset[str], ...] | None
    pii: str  # "NONE" | "BLOCK" | "MASK"


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _compile_side(cfg: dict | None, is_input: bool) -> Side | None:
    if not cfg:
        return None
    keywords = [k for k in cfg.get("invalid_keywords") or [] if isinstance(k, str) and k.strip()]
    pattern = None
    if keywords:
        pattern = re.compile("|".join(rf"(?<!\w){re.escape(k.strip())}(?!\w)" for k in keywords), re.IGNORECASE)
    topics = None
    if is_input and cfg.get("valid_topics"):
        topics = tuple(frozenset(_stem(w) for w in _WORDS.findall(t) if w.lower() not in STOP_WORDS)
                       for t in cfg["valid_topics"] if isinstance(t, str))
    behavior = ((cfg.get("pii") or {}).get("behavior") or "NONE").upper()
    if pattern is None and not topics and behavior == "NONE":
        return None
    return Side(pattern, topics, behavior)


def compile_guardrails(cfg: dict | None) -> tuple[Side | None, Side | None]:
    """(input, output) guardrails of an `ai_gateway.guardrails` config; None where nothing is on."""
    cfg = cfg or {}
    return _compile_side(cfg.get("input"), True), _compile_side(cfg.get("output"), False)


# Where the text is -----------------------------------------------------------------------------
def _content_slots(holder: dict, key: str, out: list) -> None:
    value = holder.get(key)
    if isinstance(value, str):
        out.append((holder, key))
    elif isinstance(value, list):
        for i, part in enumerate(value):
            if isinstance(part, str):
                out.append((value, i))
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append((part, "text"))


def _string_slots(root, out: list) -> None:
    """Every string value under `root` (iteratively: the gateway bounds the depth, not the width)."""
    stack = [root]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, str):
                out.append((node, key))
            elif isinstance(value, (dict, list)):
                stack.append(value)


def _items_slots(items, out: list, users_only: bool = False) -> None:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and (not users_only or item.get("role") in (None, "user")):
            _content_slots(item, "content", out)
            if isinstance(item.get("output"), str):
                out.append((item, "output"))


def request_slots(body: dict, users_only: bool = False) -> list:
    """(container, key) of each text of a query."""
    out: list = []
    if "messages" in body:
        _items_slots(body["messages"], out, users_only)
    elif "prompt" in body:
        _content_slots(body, "prompt", out)
    elif "input" in body:
        if isinstance(body["input"], list) and all(isinstance(i, str) for i in body["input"]):
            _content_slots(body, "input", out)
        elif isinstance(body["input"], list):
            _items_slots(body["input"], out, users_only)
        else:
            _content_slots(body, "input", out)
    else:
        for key in TABULAR_KEYS:
            if key in body:
                _string_slots(body[key], out)
    return out


def response_slots(body: dict) -> list:
    """(container, key) of each text of an answer."""
    out: list = []
    if isinstance(body.get("choices"), list):
        for choice in body["choices"]:
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                _content_slots(choice["message"], "content", out)
            elif isinstance(choice, dict):
                _content_slots(choice, "text", out)
    elif isinstance(body.get("output"), list):
        for item in body["output"]:
            for part in item.get("content") or [] if isinstance(item, dict) else []:
                if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    out.append((part, "text"))
    elif "messages" in body:
        _items_slots(body["messages"], out)
    elif "predictions" in body:
        _string_slots({"p": body["predictions"]}, out)
    return out


# Checks ----------------------------------------------------------------------------------------
def _off_topic(side: Side, body: dict) -> bool:
    words = set()
    for holder, key in request_slots(body, users_only=True):
        words.update(_stem(w) for w in _WORDS.findall(holder[key]))
    return not any(topic & words for topic in side.topics)


def _masked(body: dict, slots_of) -> tuple[dict, bool]:
    """A copy of `body` with the PII of its texts masked, and whether there was any."""
    findings = [pii.detect(holder[key]) for holder, key in slots_of(body)]
    if not any(findings):
        return body, False
    masked = copy.deepcopy(body)  # the same structure, so its slots come in the same order
    for (holder, key), found in zip(slots_of(masked), findings):
        if found:
            holder[key] = pii.mask(holder[key], found)
    return masked, True


def _anonymized(masked: dict, is_input: bool):
    if is_input:
        for key in ("messages", "prompt", "input"):
            if key in masked:
                return masked[key]
        return None
    return masked.get("choices", masked.get("output", masked.get("messages")))


def check(side: Side | None, body: dict, is_input: bool, usage: dict | None = None) -> dict | None:
    """Run one side's guardrails on `body`: None when nothing changes, the masked body under MASK;
    AiGatewayError 400 when a guardrail blocks."""
    if side is None or not isinstance(body, dict):
        return None
    slots_of = request_slots if is_input else response_slots
    keyword_hit = None if side.keywords is None else any(
        side.keywords.search(holder[key]) for holder, key in slots_of(body))
    off_topic = None if not side.topics else _off_topic(side, body)
    pii_hit, masked = None, None
    if side.pii in ("BLOCK", "MASK"):
        masked, pii_hit = _masked(body, slots_of)
    fired = [name for name, hit in (("invalid_keywords", keyword_hit), ("off_topic", off_topic)) if hit]
    if pii_hit and side.pii == "BLOCK":
        fired.append("pii_detection")
    if fired:
        raise blocked(is_input, fired, keyword_hit, off_topic, pii_hit,
                      _anonymized(masked, is_input) if pii_hit else None, usage)
    return masked if pii_hit else None


def blocked(is_input: bool, fired: list[str], keywords, off_topic, pii_hit, anonymized,
            usage: dict | None = None) -> AiGatewayError:
    """Databricks' answer to a query (or an answer) a guardrail blocked."""
    side = "input" if is_input else "output"
    verdict = {"flagged": False, "categories": None, "category_scores": None, "pii_detection": pii_hit,
               f"anonymized_{side}": anonymized, "invalid_keywords": keywords, "off_topic": off_topic}
    extra = {"usage": usage or {"prompt_tokens": 0, "total_tokens": 0}, f"{side}_guardrail": [verdict],
             "finishReason": f"{side}_guardrail_triggered"}
    message = f"{side.capitalize()} guardrail triggered: {', '.join(fired)}."
    return AiGatewayError(400, "BAD_REQUEST", message, extra=extra)


__all__ = ["Side", "blocked", "check", "compile_guardrails", "request_slots", "response_slots"]
