"""Query bodies: JSON in any Databricks format, CSV text with a header, or `$var`. Pure: no I/O.

`parse_body(text, namespace)` turns what the user typed in a `%%query` cell into the request dict to
POST and, when the input has rows, the input DataFrame the predictions are aligned with.

Variables are explicit and JSON-safe: `$name` as the whole body names a DataFrame, dict, list or
string in the namespace; inside a JSON body, a bare `$name` outside of string literals is replaced by
the JSON encoding of the value (`"$name"` inside a string stays literal text). IPython's `{x}`
expansion is never applied.
"""
from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from jupyter_serving.core.errors import InvalidInputError

#: Keys that carry model input rows; exactly one of them per request.
ROW_INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: Keys of chat / completions / embeddings requests.
LLM_INPUT_KEYS = ("messages", "prompt", "input")
#: Every top-level key a Databricks invocation accepts (custom models and foundation models).
KNOWN_KEYS = frozenset(
    ROW_INPUT_KEYS
    + LLM_INPUT_KEYS
    + (
        "params", "dataframe", "client_request_id", "usage_context", "extra_params", "max_tokens",
        "temperature", "n", "stop", "stream", "top_p", "top_k", "tools", "tool_choice",
        "response_format", "logprobs", "top_logprobs", "model", "encoding_format", "dimensions",
        "custom_inputs", "databricks_options", "reasoning_effort", "stream_options",
    )
)

_VAR_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_IDENT_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")

FORMAT_HINT = (
    "Write JSON in a Databricks format (dataframe_split, dataframe_records, instances, inputs, "
    "messages, prompt, input), CSV with a header line, or $name for a notebook variable."
)


class BodyError(InvalidInputError):
    """The query body cannot be understood; nothing was sent."""


@dataclass
class Body:
    """A parsed query body."""

    request: dict
    frame: pd.DataFrame | None  # input rows, to align predictions with (None for chat etc.)
    format: str  # the Databricks input key used, e.g. "dataframe_split" or "messages"
    source: str  # "json", "csv" or "$name"


# --------------------------------------------------------------------------------------------------
# JSON helpers


def jsonable(value: Any) -> Any:
    """A copy of `value` that `json.dumps(allow_nan=False)` accepts: numpy/pandas scalars unwrapped,
    NaN/inf -> null, timestamps -> ISO strings, arrays -> lists."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records", date_format="iso"))
    if isinstance(value, pd.Series):
        return json.loads(value.to_json(orient="values", date_format="iso"))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return jsonable(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    raise BodyError(f"Cannot send a value of type {type(value).__name__} as JSON",
                    "Convert it to numbers, strings, lists or dicts first.")


def frame_to_split(df: pd.DataFrame) -> dict:
    """`dataframe_split` payload (columns + data, no index), JSON-safe."""
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    return json.loads(df.to_json(orient="split", index=False, date_format="iso"))


def _json_error(err: json.JSONDecodeError, what: str = "JSON body") -> BodyError:
    return BodyError(
        f"Malformed {what} at line {err.lineno}, column {err.colno}: {err.msg}",
        "Fix the JSON (keys and strings need double quotes, no trailing commas); "
        "use $name to insert a notebook variable.",
    )


def substitute_variables(text: str, namespace: Mapping[str, Any] | None) -> str:
    """Replace bare `$name` tokens outside JSON string literals by the JSON encoding of the value.

    A DataFrame becomes records, or a `dataframe_split` object when it is the value of a
    "dataframe_split" key.
    """
    if "$" not in text:
        return text
    namespace = namespace or {}
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
            i += 1
            continue
        if ch == '"':
            in_string = True
            out.append(ch)
            i += 1
            continue
        if ch == "$":
            m = _VAR_RE.match(text, i)
            if not m:
                raise BodyError(f"A '$' at position {i + 1} of the body is not followed by a variable name",
                                "Write $name (letters, digits, _) outside of quotes, or put the $ inside a string.")
            name = m.group(1)
            if name not in namespace:
                raise unknown_variable(name)
            value = namespace[name]
            before = "".join(out)
            if isinstance(value, pd.DataFrame) and re.search(r'"dataframe_split"\s*:\s*$', before):
                encoded = frame_to_split(value)
            else:
                encoded = jsonable(value)
            out.append(json.dumps(encoded, allow_nan=False))
            i = m.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def unknown_variable(name: str) -> BodyError:
    return BodyError(f"Unknown variable ${name}",
                     f"Define {name} in the notebook first; variables are written $name "
                     "(IPython's {x} expansion is not applied to query bodies).")


# --------------------------------------------------------------------------------------------------
# From values


def _rows_frame(rows: list) -> pd.DataFrame | None:
    if not rows:
        return None
    if all(isinstance(r, Mapping) for r in rows):
        return pd.DataFrame.from_records(rows)
    return None


def _listed_frame(value: Any, column: str) -> pd.DataFrame:
    """Records as a frame, anything else listed as one column."""
    frame = _rows_frame(value)
    return frame if frame is not None else pd.DataFrame({column: list(value)})


def _split_frame(split: Mapping) -> pd.DataFrame:
    data = split.get("data") or []
    if data and not isinstance(data[0], (list, tuple)):
        data = [[v] for v in data]
    return pd.DataFrame(data, columns=split.get("columns"))


def _text_input_frame(value: Any) -> pd.DataFrame | None:
    if isinstance(value, str):
        return pd.DataFrame({"input": [value]})
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return pd.DataFrame({"input": value})
    return None


def _frame_for(request: dict) -> pd.DataFrame | None:
    """The input rows of a request, to align predictions with; None when it has no rows."""
    if "dataframe_split" in request:
        return _split_frame(request["dataframe_split"])
    if "dataframe_records" in request:
        recs = request["dataframe_records"]
        return pd.DataFrame(recs) if isinstance(recs, Mapping) else _listed_frame(recs, "input")
    for key, column in (("instances", "instance"), ("inputs", "input")):
        if key in request:
            value = request[key]
            if isinstance(value, Mapping):
                return _columnar(value)
            if key == "inputs" and not isinstance(value, list):
                return None
            return _listed_frame(value, column)
    if "input" in request and "messages" not in request:
        return _text_input_frame(request["input"])
    return None


def _columnar(mapping: Mapping) -> pd.DataFrame | None:
    """{"a": [1, 2], "b": [3, 4]} -> DataFrame; None if the values are not equal-length lists."""
    values = list(mapping.values())
    if values and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
        return pd.DataFrame({str(k): v for k, v in mapping.items()})
    return None


_SPLIT_EXAMPLE = 'e.g. {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}.'


def _check_split(value: Any) -> None:
    if not isinstance(value, Mapping) or "data" not in value:
        raise BodyError("dataframe_split needs an object with 'columns' and 'data'", _SPLIT_EXAMPLE)
    cols, data = value.get("columns"), value.get("data")
    if not isinstance(data, list):
        raise BodyError("dataframe_split.data must be a list of rows", _SPLIT_EXAMPLE)
    if cols is None:
        return
    for i, row in enumerate(data):
        if isinstance(row, list) and len(row) != len(cols):
            raise BodyError(f"dataframe_split row {i + 1} has {len(row)} values but there are "
                            f"{len(cols)} columns", "Give one value per column in every row.")


def _check_row_input(key: str, value: Any) -> None:
    if key == "dataframe_split":
        _check_split(value)
    elif key == "dataframe_records" and not isinstance(value, (list, Mapping)):
        raise BodyError("dataframe_records must be a list of records", 'e.g. {"dataframe_records": [{"x": 1.0}]}.')
    elif key == "instances" and not isinstance(value, (list, Mapping)):
        raise BodyError("instances must be a list", 'e.g. {"instances": [[1.0, 2.0]]}.')


def _check_messages(msgs: Any) -> None:
    if not isinstance(msgs, list) or not all(isinstance(m, Mapping) for m in msgs):
        raise BodyError("messages must be a list of {role, content} objects",
                        'e.g. {"messages": [{"role": "user", "content": "Hello"}]}.')


def _check_request(request: dict) -> str:
    """Validate the shape of a Databricks request dict; return its input format key."""
    present = [k for k in ROW_INPUT_KEYS if k in request]
    if len(present) > 1:
        raise BodyError(f"The body has both {present[0]} and {present[1]}",
                        "Use exactly one of dataframe_split, dataframe_records, instances, inputs.")
    if present:
        _check_row_input(present[0], request[present[0]])
        return present[0]
    key = next((k for k in LLM_INPUT_KEYS if k in request), None)
    if key is not None:
        if key == "messages":
            _check_messages(request["messages"])
        return key
    unknown = [k for k in request if k not in KNOWN_KEYS]
    if unknown:
        raise BodyError(f"The body has no model input (unknown key{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(repr(k) for k in unknown[:3])})", FORMAT_HINT)
    if "dataframe" in request:
        return "dataframe"
    raise BodyError("The body has no model input", FORMAT_HINT)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _label(source: str) -> str:
    """'$df' for variables, 'The body' otherwise (for messages)."""
    return source if source.startswith("$") else "The body"


def _body_from_mapping(value: Mapping, source: str) -> Body:
    request = jsonable(dict(value))
    if any(k in KNOWN_KEYS for k in request):
        fmt = _check_request(request)
        return Body(request, _frame_for(request), fmt, source)
    # Not a Databricks request: columns of equal length, or one record.
    if not request:
        raise BodyError(f"{_label(source)} is an empty object", FORMAT_HINT)
    frame = _columnar(request)
    if frame is None and all(not isinstance(v, (list, Mapping)) for v in request.values()):
        frame = pd.DataFrame([request])
    if frame is None:
        unknown = ", ".join(repr(k) for k in list(request)[:3])
        raise BodyError(f"{_label(source)} has no model input (unknown keys {unknown})", FORMAT_HINT)
    return Body({"dataframe_split": frame_to_split(frame)}, frame, "dataframe_split", source)


def _body_from_list(value: list | tuple, source: str) -> Body:
    items = jsonable(list(value))
    if not items:
        raise BodyError(f"{_label(source)} is an empty list", "Query with at least one row.")
    key = "dataframe_records" if all(isinstance(r, Mapping) for r in items) else "instances"
    request = {key: items}
    return Body(request, _frame_for(request), key, source)


def body_from_value(value: Any, *, source: str = "value") -> Body:
    """A Body from a Python value: DataFrame, Series, dict (a Databricks request, or columns/one
    record), list (records or instances), numpy array, or a JSON/CSV string."""
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        if value.empty:
            raise BodyError(f"{_label(source)} is a DataFrame without rows", "Query with at least one row.")
        # The frame keeps its index: the result rows carry it, so they join back to the input.
        return Body({"dataframe_split": frame_to_split(value)}, value,
                    "dataframe_split", source)
    if isinstance(value, str):
        return parse_text(value, {}, source=source, allow_vars=False)
    if isinstance(value, Mapping):
        return _body_from_mapping(value, source)
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return _body_from_list(value, source)
    kind = type(value).__name__
    raise BodyError(f"{_label(source)} is {_article(kind)} {kind}",
                    "Use a DataFrame, dict, list, or a JSON/CSV string.")


# --------------------------------------------------------------------------------------------------
# From text


def _parse_csv(text: str, source: str) -> Body:
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except pd.errors.ParserError as err:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if m:
            raise BodyError(f"Malformed CSV body: line {m.group(2)} has {m.group(3)} fields, the header has "
                            f"{m.group(1)}", "Give every row as many values as the header has columns.") from None
        raise BodyError(f"Malformed CSV body: {err}", FORMAT_HINT) from None
    except pd.errors.EmptyDataError:
        raise BodyError("The body is empty", FORMAT_HINT) from None
    if frame.empty:
        raise BodyError("The body is neither JSON nor CSV with rows (read as CSV it is a header without rows)",
                        FORMAT_HINT)
    frame.columns = [str(c).strip() for c in frame.columns]
    return Body({"dataframe_split": frame_to_split(frame)}, frame, "dataframe_split", source)


def parse_text(text: str, namespace: Mapping[str, Any] | None = None, *, source: str = "body",
               allow_vars: bool = True) -> Body:
    stripped = (text or "").strip()
    if not stripped:
        raise BodyError("The query body is empty", FORMAT_HINT)
    if allow_vars:
        m = _IDENT_RE.match(stripped)
        if m:
            name = m.group(1)
            if namespace is None or name not in namespace:
                raise unknown_variable(name)
            return body_from_value(namespace[name], source=f"${name}")
    if stripped[0] in "{[":
        if allow_vars:
            stripped = substitute_variables(stripped, namespace)
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise _json_error(err) from None
        if not isinstance(value, (dict, list)):
            raise BodyError(f"{_label(source)} is JSON but not an object or a list",
                            'e.g. {"dataframe_records": [{"x": 1.0}]}.')
        body = body_from_value(value, source=source)
        body.source = "json" if source == "body" else source
        return body
    if stripped.startswith("$") and allow_vars:
        raise BodyError(f"'{stripped.split()[0]}' is not a variable reference",
                        "Write $name alone for a variable, or JSON with $name inside it.")
    return _parse_csv(stripped, "csv" if source == "body" else source)


def parse_body(text: str, namespace: Mapping[str, Any] | None = None) -> Body:
    """Parse a `%%query` cell body (or the rest of a `%query` line). Raises BodyError."""
    return parse_text(text, namespace)


def request_bytes(request: dict) -> bytes:
    """The JSON bytes to POST (strict JSON: NaN and inf become null)."""
    return json.dumps(jsonable(request), allow_nan=False).encode("utf-8")


def compact_json(value: Any, width: int = 88, indent: int = 0, used: int | None = None) -> str:
    """JSON for people: a container goes on one line when it fits in `width`, else one item per line
    (a dataframe_split template keeps one row per line instead of one number per line). `used` is
    how much of the current line is taken already (default: the indent)."""
    flat = json.dumps(value)
    used = indent if used is None else used
    if used + len(flat) < width or not isinstance(value, (dict, list)) or not value:  # room for a ","
        return flat
    inner = indent + 2
    pad = " " * inner
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{pad}{json.dumps(str(key))}: "
            items.append(head + compact_json(item, width, inner, len(head)))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if not any(isinstance(item, (dict, list)) for item in value):  # scalars: fill the lines
        lines, line = [], ""
        for text in (json.dumps(item) for item in value):
            if line and inner + len(line) + len(text) + 3 > width:  # ", " and a trailing ","
                lines.append(line + ",")
                line = ""
            line = f"{line}, {text}" if line else text
        lines.append(line)
        return "[\n" + "\n".join(pad + ln for ln in lines) + "\n" + " " * indent + "]"
    items = [pad + compact_json(item, width, inner) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


_MISSING = re.compile(r"missing inputs?:?\s*\[([^\]]*)\]", re.IGNORECASE)
_SCHEMA_COLUMN = re.compile(r"""['"]([^'"\[\]]+)['"]\s*:\s*[a-z]""")


def missing_columns(server: str, expected: list[str] | None = None) -> str | None:
    """'Missing column(s) 'petal_width' — the model expects: a, b, c, d' for MLflow's schema
    enforcement dump (the useful part is last there), or None when the text is about something
    else. `expected` defaults to the columns named in the dump's schema."""
    m = _MISSING.search(server or "")
    if not m:
        return None
    missing = [p.strip().strip("'\"") for p in m.group(1).split(",") if p.strip()]
    if not missing:
        return None
    if not expected:
        schema = server.split("with schema", 1)[1] if "with schema" in server else ""
        expected = list(dict.fromkeys(_SCHEMA_COLUMN.findall(schema.split("Error:", 1)[0])))
    names = ", ".join(f"'{c}'" for c in missing)
    line = f"Missing column{'s' if len(missing) > 1 else ''} {names}"
    return f"{line} — the model expects: {', '.join(expected)}" if expected else line
