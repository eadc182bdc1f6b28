"""Session fixtures (a pytest plugin, listed in tests/conftest.py) that register the GenAI test models
of tests/genai_models.py in the local backend's registry. Each returns {"name": "main.ml.<x>", "version": "1"}.

| fixture                  | registered model               | class                 | task (MLmodel metadata) |
|--------------------------|--------------------------------|-----------------------|-------------------------|
| `delayed_chat_model`     | `main.ml.delayed_chat`         | DelayedChatModel      | agent/v1/chat           |
| `responses_agent_model`  | `main.ml.responses_agent`      | DelayedResponsesAgent | agent/v1/responses      |
| `chat_agent_model`       | `main.ml.chat_agent`           | DelayedChatAgent      | agent/v2/chat           |
| `streaming_pyfunc_model` | `main.ml.streaming_pyfunc`     | StreamingPyfunc       | (none)                  |
| `minilm_model`           | `main.ml.minilm_embeddings`    | MiniLMEmbeddings      | llm/v1/embeddings       |
| `completions_model`      | `main.ml.echo_completions`     | EchoCompletions       | llm/v1/completions      |

How each is driven (bodies, `custom_inputs` keys, chunk shapes): the docstring of tests/genai_models.py.
"""
from __future__ import annotations

import pytest


def _register_genai(kind: str, name: str) -> dict[str, str]:
    import cloudpickle
    import mlflow

    import tests.genai_models as genai_models
    from tests.conftest import _register

    # Pickle the models by value: the scoring worker cannot import the tests package.
    cloudpickle.register_pickle_by_value(genai_models)
    version = _register(name, lambda: mlflow.pyfunc.log_model(name="model", **genai_models.log_kwargs(kind)))
    return {"name": name, "version": version}


@pytest.fixture(scope="session")
def delayed_chat_model(local_backend):
    """A ChatModel answering `tok0 tok1 ...`; `custom_inputs` {"ttft_ms", "itl_ms", "tokens"} pace it."""
    return _register_genai("delayed_chat", "main.ml.delayed_chat")


@pytest.fixture(scope="session")
def responses_agent_model(local_backend):
    """A ResponsesAgent; body {"input": [...]}; "call tool" in the prompt adds a function call."""
    return _register_genai("responses_agent", "main.ml.responses_agent")


@pytest.fixture(scope="session")
def chat_agent_model(local_backend):
    """A ChatAgent; body {"messages": [...], "custom_inputs": {...}}."""
    return _register_genai("chat_agent", "main.ml.chat_agent")


@pytest.fixture(scope="session")
def streaming_pyfunc_model(local_backend):
    """A custom pyfunc with predict_stream; body {"inputs": {"prompt": ...}, "params": {...}}."""
    return _register_genai("streaming_pyfunc", "main.ml.streaming_pyfunc")


@pytest.fixture(scope="session")
def minilm_model(local_backend):
    """all-MiniLM-L6-v2 sentence embeddings (384 floats); body {"input": str | [str]}."""
    return _register_genai("minilm", "main.ml.minilm_embeddings")


@pytest.fixture(scope="session")
def completions_model(local_backend):
    """An OpenAI completions model echoing the prompt; body {"prompt": ..., "max_tokens": ...}."""
    return _register_genai("completions", "main.ml.echo_completions")
