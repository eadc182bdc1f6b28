"""`%serve chat NAME [NAME2 ...]`: the chat playground (streaming; side by side with several names)."""
from __future__ import annotations

from jupyter_serving.magics.completion import Typed
from jupyter_serving.magics.context import Context
from jupyter_serving.magics.errors import MagicUsageError
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command

MAX_TARGETS = 3


def _arguments(p: CommandParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="endpoints to chat with, side by side (up to 3); NAME/ENTITY picks one served entity")
    p.add_argument("--system", help="the system prompt")
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--stop", action="append", metavar="WORD", help="a stop word (repeatable)")
    p.add_argument("-o", "--output", metavar="VAR", help="also store the playground in VAR")


def _complete(typed: Typed) -> list[str]:
    if typed.current.startswith("-"):
        return []
    if "/" in typed.current:  # NAME/ENTITY
        name = typed.current.split("/", 1)[0]
        return [f"{name}/{e}" for e in typed.names.entities(name)]
    return typed.names.endpoints()


@command("chat", "a chat playground, streaming: `chat NAME [NAME2 ...]` compares endpoints side by side",
         arguments=_arguments, takes_name=True, complete=_complete,
         description="Chat with a chat model or an agent: streaming answers with tokens and TTFT, system prompt, "
                     "temperature, max tokens, stop words, Stop, Show code, Save transcript. Several NAMEs (or "
                     "NAME/ENTITY) answer the same prompt side by side.")
def chat(ctx: Context, opts):
    if len(opts.names) > MAX_TARGETS:
        raise MagicUsageError(f"%serve chat compares at most {MAX_TARGETS} endpoints, got {len(opts.names)}",
                              "Name one to three endpoints (or NAME/ENTITY).")
    from jupyter_serving.widgets import ChatPlayground
    from jupyter_serving.widgets.chat_column import split_target

    client = ctx.client()
    for target in opts.names:  # a missing endpoint fails here, with "did you mean"
        opts.name = split_target(target)[0]
        client.get(opts.name)
    playground = ChatPlayground(*opts.names, client=client, system=opts.system or "",
                                temperature=opts.temperature, max_tokens=opts.max_tokens, stop=opts.stop)
    if opts.output:
        ctx.user_ns[opts.output] = playground
    return playground
