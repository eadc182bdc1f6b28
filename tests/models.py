"""Small pyfunc models the tests log and serve (importable by the scoring server via cloudpickle)."""
import time

import mlflow.pyfunc


class SleepModel(mlflow.pyfunc.PythonModel):
    """Sleeps a known time per call, so that runtime, QPS and concurrency are predictable."""

    def predict(self, context, model_input, params=None):
        time.sleep(float((params or {}).get("sleep_ms", 50.0)) / 1000.0)
        return model_input[["x"]].astype(float) * 2


class SlowLoadModel(mlflow.pyfunc.PythonModel):
    """Takes a long time to load (`load_context` sleeps 600 s), so its deployment stays IN_PROGRESS."""

    def load_context(self, context):
        time.sleep(600)

    def predict(self, context, model_input, params=None):
        return model_input


class BrokenModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("weights are corrupt (this model fails to load on purpose)")

    def predict(self, context, model_input, params=None):
        return model_input


class EchoChatModel(mlflow.pyfunc.ChatModel):
    """A chat-format model: answers the last user message, echoed, with `max_tokens` honoured."""

    def predict(self, context, messages, params):
        from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage

        text = f"echo: {messages[-1].content}"
        if params.max_tokens:
            text = " ".join(text.split()[: params.max_tokens])
        return ChatCompletionResponse(
            choices=[ChatChoice(index=0, message=ChatMessage(role="assistant", content=text), finish_reason="stop")],
            model="echo-chat",
        )
