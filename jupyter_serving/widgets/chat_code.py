"""The code a chat playground stands for: its last request, sent without the widget. Pure.

A chat model queried through its traffic split gets openai-client code (Databricks' OpenAI-compatible
`chat.completions`, streamed); an agent (ResponsesAgent, ChatAgent), or one served entity of an
endpoint (which the OpenAI routes cannot address), gets the `client.chat(...)` equivalent.
"""
from __future__ import annotations

import pprint
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AGENT_TASKS = frozenset({"agent/v1/responses", "agent/v2/chat"})


@dataclass
class ChatTarget:
    """One column's request: endpoint, served entity (None: the traffic split), task, messages."""

    name: str
    entity: str | None = None
    task: str = ""
    messages: list[dict] = field(default_factory=list)

    @property
    def openai_compatible(self) -> bool:
        return self.entity is None and self.task not in AGENT_TASKS


def _literal(value: Any, indent: int) -> str:
    text = pprint.pformat(value, indent=1, width=100 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def _messages(messages: Sequence[Mapping]) -> str:
    """`messages = [...]`, one message a line."""
    if not messages:
        return "messages = []"
    return "messages = [\n" + "".join(f"    {dict(m)!r},\n" for m in messages) + "]"


def _kwargs(options: Mapping[str, Any], *, openai: bool) -> list[str]:
    """`key=value` lines for the options that are set (system aside: it is a message for openai)."""
    out = []
    for key in ("system", "temperature", "max_tokens", "stop"):
        value = options.get(key)
        if value is None or value == "" or value == [] or (openai and key == "system"):
            continue
        out.append(f"{key}={value!r}")
    extra = {k: v for k, v in options.items() if k not in ("system", "temperature", "max_tokens", "stop")}
    if extra and openai:
        out.append(f"extra_body={_literal(extra, 4)}")
    elif extra:
        out += [f"{k}={_literal(v, 4)}" for k, v in extra.items()]
    return out


def _connect(local: bool, data_dir: str | None, profile: str | None, openai: bool, native: bool,
             has_openai: bool) -> list[str]:
    """The imports and clients the code needs: `openai_client` (openai), `client` (ServingClient)."""
    if local:
        arg = f"local=True, data_dir={data_dir!r}" if data_dir else "local=True"
        lines = ["from jupyter_serving import api", "", f"client = api.connect({arg})"]
        if openai:
            lines.append("openai_client = " + ("client.openai()" if has_openai else
                                               "client.workspace.serving_endpoints.get_open_ai_client()")
                         + "  # the local backend's OpenAI-compatible API")
        return lines
    lines = []
    if openai:
        where = f"profile={profile!r}" if profile else ""
        how = "" if profile else " (DATABRICKS_HOST + DATABRICKS_TOKEN, or ~/.databrickscfg)"
        lines += ["from databricks.sdk import WorkspaceClient", "",
                  f"# Databricks' OpenAI-compatible API{how}",
                  f"openai_client = WorkspaceClient({where}).serving_endpoints.get_open_ai_client()"]
    if native:
        where = f"profile={profile!r}" if profile else ""
        lines += ([""] if lines else []) + ["from jupyter_serving import api", "", f"client = api.connect({where})"]
    return lines


def _openai_call(target: ChatTarget, options: Mapping[str, Any]) -> list[str]:
    messages = list(target.messages)
    if options.get("system"):
        messages.insert(0, {"role": "system", "content": options["system"]})
    lines = [_messages(messages),
             "stream = openai_client.chat.completions.create(",
             f"    model={target.name!r},",
             "    messages=messages,"]
    lines += [f"    {kw}," for kw in _kwargs(options, openai=True)]
    lines += ["    stream=True,", ")",
              "for chunk in stream:",
              "    if chunk.choices and chunk.choices[0].delta.content:",
              '        print(chunk.choices[0].delta.content, end="", flush=True)',
              "print()"]
    return lines


def _posted_body(target: ChatTarget, options: Mapping[str, Any]) -> list[str]:
    """Comment lines: the body `client.chat` posts for the endpoint's task (the REST equivalent)."""
    from jupyter_serving.core.chat_body import chat_body
    from jupyter_serving.core.errors import ServingError

    known = {k: options.get(k) for k in ("system", "temperature", "max_tokens", "stop")}
    extra = {k: v for k, v in options.items() if k not in known}
    try:
        body = chat_body(list(target.messages), task=target.task or None, stream=True, extra=extra, **known)
    except ServingError:
        return []
    path = f"/serving-endpoints/{target.name}" + (f"/served-models/{target.entity}" if target.entity else "")
    text = pprint.pformat(body, width=96, sort_dicts=False)
    return [f"# It posts to {path}/invocations (server-sent events back):"] + [f"#   {line}" for line in
                                                                               text.splitlines()]


def _client_call(target: ChatTarget, options: Mapping[str, Any]) -> list[str]:
    lines = [_messages(target.messages), *_posted_body(target, options),
             f"stream = client.chat({target.name!r}, messages,"]
    if target.entity:
        lines.append(f"                     entity={target.entity!r},")
    lines += [f"                     {kw}," for kw in _kwargs(options, openai=False)]
    lines[-1] = lines[-1].rstrip(",") + ")"
    lines += ["with stream:  # ChatDelta pieces: text, tool calls and results, finish_reason, tokens",
              "    for delta in stream:",
              "        for call in delta.tool_calls:",
              '            print(f"→ {call.describe()}")',
              "        for result in delta.tool_results:",
              '            print(f"← {result.output}")',
              '        print(delta.text, end="", flush=True)',
              "print()",
              "answer = stream.answer  # text, completion_tokens, ttft_ms, total_ms, served_entity"]
    return lines


def playground_code(targets: Sequence[ChatTarget], options: Mapping[str, Any], *, local: bool = False,
                    data_dir: str | None = None, profile: str | None = None, has_openai: bool = False) -> str:
    """Python that sends each column's last request again (streamed), without the playground."""
    if not targets:
        return "# No endpoint in the playground."
    use_openai = any(t.openai_compatible for t in targets)
    native = any(not t.openai_compatible for t in targets)
    lines = _connect(local, data_dir, profile, use_openai, native, has_openai)
    for target in targets:
        label = target.name + (f" (served entity {target.entity})" if target.entity else "")
        kind = "an agent" if target.task in AGENT_TASKS else "a chat model"
        how = "the openai client" if target.openai_compatible else "client.chat"
        lines += ["", f"# {label}: {kind}, through {how}"]
        lines += _openai_call(target, options) if target.openai_compatible else _client_call(target, options)
    return "\n".join(lines)
