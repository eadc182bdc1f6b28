"""`%serve bench NAME`: load-test an endpoint and size its concurrency (`jupyter_serving.bench`);
`--llm` streams every request and sizes provisioned throughput (`bench.llm_notebook`)."""
from __future__ import annotations

from jupyter_serving.magics.context import Context
from jupyter_serving.magics.parsing import CommandParser
from jupyter_serving.magics.registry import command


def _arguments(p: CommandParser) -> None:
    from jupyter_serving.bench.notebook import add_bench_arguments

    add_bench_arguments(p)


@command("bench", "load-test an endpoint and size its concurrency: "
         "`bench NAME [--target-qps Q] [--concurrency 1,2,4,8]`; LLM endpoints, streamed: "
         "`bench NAME --llm [--target-rps R --target-ttft-ms T --target-tpot-ms T] [--apply]`",
         arguments=_arguments, takes_name=True)
def bench(ctx: Context, opts):
    from jupyter_serving.bench.notebook import run_bench_args

    return run_bench_args(ctx.client(), opts, user_ns=ctx.user_ns, namespace=ctx.ns)
