"""Shaping query responses into DataFrames, and the QueryResult the API returns. Pure: no I/O.

- predictions (custom models): input columns, then one column per output, aligned with the input
  rows; an output whose name clashes with an input column is suffixed with "_prediction";
- chat: one row per choice (index, role, content, finish_reason);
- completions: one row per choice (index, prompt when known, text, finish_reason);
- embeddings: the input text (when known) and an `embedding` vector column.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

PREDICTION = "prediction"


class QueryFrame(pd.DataFrame):
    """A pandas DataFrame whose display adds a footer (latency, served-model-name).

    Everything derived from it (selections, copies, arithmetic) is a plain DataFrame.
    """

    _metadata = ["latency_ms", "served_model_name", "endpoint"]

    @property
    def _constructor(self):
        return pd.DataFrame

    def footer(self) -> str:
        parts = []
        latency = getattr(self, "latency_ms", None)
        if latency is not None:
            parts.append(f"latency {latency:.0f} ms")
        served = getattr(self, "served_model_name", None)
        if served:
            parts.append(f"served-model-name {served}")
        endpoint = getattr(self, "endpoint", None)
        if endpoint:
            parts.insert(0, f"endpoint {endpoint}")
        return " · ".join(parts)

    def _repr_html_(self):  # type: ignore[override]
        table = super()._repr_html_()
        if table is None:
            return None
        foot = self.footer()
        if not foot:
            return table
        return f'{table}<div style="color:#666;font-size:smaller">{html.escape(foot)}</div>'

    def __repr__(self) -> str:
        foot = self.footer()
        base = super().__repr__()
        return f"{base}\n{foot}" if foot else base


def _clean_column(name: Any) -> str:
    return str(name)


def predictions_frame(predictions: Any) -> pd.DataFrame:
    """The outputs alone, one column per output."""
    if isinstance(predictions, Mapping):
        values = list(predictions.values())
        if values and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
            return pd.DataFrame({_clean_column(k): v for k, v in predictions.items()})
        return pd.DataFrame([{_clean_column(k): v for k, v in predictions.items()}])
    if isinstance(predictions, list):
        if not predictions:
            return pd.DataFrame({PREDICTION: []})
        if all(isinstance(p, Mapping) for p in predictions):
            frame = pd.DataFrame.from_records(predictions)
            frame.columns = [_clean_column(c) for c in frame.columns]
            return frame
        return pd.DataFrame({PREDICTION: predictions})
    return pd.DataFrame({PREDICTION: [predictions]})


def align(inputs: pd.DataFrame | None, outputs: pd.DataFrame) -> pd.DataFrame:
    """Input columns then output columns, when the row counts agree; else the outputs alone. The
    rows keep the input's index (`[14, 98, 75]` stays that), so results join back to the input."""
    if inputs is None or len(inputs) != len(outputs):
        return outputs.reset_index(drop=True)
    if inputs.shape[1] == 0:
        return outputs.set_axis(inputs.index, axis=0)
    left = inputs.copy()
    left.columns = [_clean_column(c) for c in left.columns]
    taken = set(left.columns)
    renamed = {}
    for col in outputs.columns:
        new = col
        if new in taken:
            new = f"{col}_prediction"
            k = 2
            while new in taken:
                new = f"{col}_prediction{k}"
                k += 1
        renamed[col] = new
        taken.add(new)
    right = outputs.rename(columns=renamed).set_axis(left.index, axis=0)
    return pd.concat([left, right], axis=1)


def completions_frame(response: Mapping, request: Mapping | None) -> pd.DataFrame:
    rows = [{"index": c.get("index", i), "text": c.get("text"), "finish_reason": c.get("finish_reason")}
            for i, c in enumerate(response.get("choices") or [])]
    frame = pd.DataFrame(rows, columns=["index", "text", "finish_reason"])
    prompts = (request or {}).get("prompt")
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(prompts, list) and len(prompts) == len(frame):
        frame.insert(1, "prompt", prompts)
    return frame


def chat_frame(response: Mapping) -> pd.DataFrame:
    rows = []
    for i, choice in enumerate(response.get("choices") or []):
        row: dict[str, Any] = {"index": choice.get("index", i)}
        message = choice.get("message") or choice.get("delta")
        if isinstance(message, Mapping):
            row["role"] = message.get("role")
            row["content"] = message.get("content")
            if message.get("tool_calls"):
                row["tool_calls"] = message.get("tool_calls")
        else:
            row["role"] = None
            row["content"] = choice.get("text")
        row["finish_reason"] = choice.get("finish_reason")
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["index", "role", "content", "finish_reason"])


def embeddings_frame(response: Mapping, request: Mapping | None) -> pd.DataFrame:
    data = sorted(response.get("data") or [], key=lambda d: d.get("index", 0))
    frame = pd.DataFrame({"embedding": [d.get("embedding") for d in data]})
    texts = (request or {}).get("input")
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, list) and len(texts) == len(frame):
        frame.insert(0, "input", texts)
    return frame


def shape_response(response: Any, request: Mapping | None = None,
                   inputs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """(DataFrame, kind) for a query response; kind is predictions, chat, completions, embeddings
    or raw."""
    if not isinstance(response, Mapping):
        return predictions_frame(response), "predictions"
    if "predictions" in response or "outputs" in response:
        preds = response["predictions"] if "predictions" in response else response["outputs"]
        return align(inputs, predictions_frame(preds)), "predictions"
    if isinstance(response.get("choices"), list):
        choices = response["choices"]
        if any(isinstance(c, Mapping) and ("message" in c or "delta" in c) for c in choices):
            return chat_frame(response), "chat"
        return completions_frame(response, request), "completions"
    data = response.get("data")
    if isinstance(data, list) and all(isinstance(d, Mapping) and "embedding" in d for d in data):
        return embeddings_frame(response, request), "embeddings"
    payload = {k: v for k, v in response.items() if k != "served-model-name"}
    return pd.DataFrame({"response": [payload]}), "raw"


@dataclass
class QueryResult:
    """What `ServingClient.query` returns: the shaped DataFrame and facts about the call."""

    endpoint: str
    frame: QueryFrame
    response: dict
    request: dict
    latency_ms: float
    served_model_name: str | None = None
    entity: str | None = None
    kind: str = "predictions"
    usage: dict | None = field(default=None)

    @property
    def df(self) -> QueryFrame:
        return self.frame

    def DataFrame(self) -> QueryFrame:
        return self.frame

    def json(self) -> str:
        return json.dumps(self.response, indent=2, default=str)

    def _repr_html_(self):
        return self.frame._repr_html_()

    def __repr__(self) -> str:
        return repr(self.frame)


def make_result(endpoint: str, response: dict, request: dict, inputs: pd.DataFrame | None,
                latency_ms: float, served_model_name: str | None, entity: str | None = None) -> QueryResult:
    body = {k: v for k, v in response.items() if k != "served-model-name"} if isinstance(response, Mapping) \
        else response
    frame, kind = shape_response(body, request, inputs)
    qframe = QueryFrame(frame)
    qframe.latency_ms = latency_ms
    qframe.served_model_name = served_model_name
    qframe.endpoint = endpoint
    usage = body.get("usage") if isinstance(body, Mapping) else None
    return QueryResult(endpoint, qframe, body, request, latency_ms, served_model_name, entity, kind, usage)
