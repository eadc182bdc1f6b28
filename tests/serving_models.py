"""A tiny pyfunc that answers like a foundation model, so that chat, completions and embeddings
requests can be served by the local backend (MLflow passes `messages` / `prompt` / `input`
bodies to the model unparsed and returns its answer unwrapped)."""
import mlflow.pyfunc


class LLMEcho(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        body = model_input if isinstance(model_input, dict) else {}
        if "messages" in body:
            last = body["messages"][-1]["content"]
            n = int(body.get("n") or 1)
            return {"object": "chat.completion", "model": "echo",
                    "choices": [{"index": i, "message": {"role": "assistant", "content": f"echo: {last}"},
                                 "finish_reason": "stop"} for i in range(n)],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
        if "prompt" in body:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            return {"object": "text_completion",
                    "choices": [{"index": i, "text": p[::-1], "finish_reason": "stop"} for i, p in enumerate(prompts)]}
        texts = body.get("input")
        texts = texts if isinstance(texts, list) else [texts]
        return {"object": "list", "data": [{"object": "embedding", "index": i,
                                            "embedding": [float(len(t)), float(i)]} for i, t in enumerate(texts)]}
