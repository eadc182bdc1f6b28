"""Pure: query bodies (JSON / CSV / $var -> request + input rows) and result shaping."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from jupyter_serving.core.query_body import (
    BodyError,
    body_from_value,
    jsonable,
    parse_body,
    request_bytes,
    substitute_variables,
)
from jupyter_serving.core.results import (
    QueryFrame,
    align,
    make_result,
    predictions_frame,
    shape_response,
)

DF = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})


# ---------------------------------------------------------------------------------------------- bodies

@pytest.mark.parametrize("text, fmt", [
    ('{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, "x"], [2.0, "y"]]}}', "dataframe_split"),
    ('{"dataframe_records": [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]}', "dataframe_records"),
    ('{"instances": [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]}', "instances"),
    ('{"inputs": {"a": [1.0, 2.0], "b": ["x", "y"]}}', "inputs"),
    ('[{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]', "dataframe_records"),
    ("a,b\n1.0,x\n2.0,y\n", "dataframe_split"),
    ("a, b\n1.0, x\n2.0, y", "dataframe_split"),
    ("$df", "dataframe_split"),
    ('{"a": [1.0, 2.0], "b": ["x", "y"]}', "dataframe_split"),
], ids=["split", "records", "instances", "inputs", "list", "csv", "csv-spaces", "var", "columns-dict"])
def test_row_formats_give_the_same_input_frame(text, fmt):
    body = parse_body(text, {"df": DF})
    assert body.format == fmt
    assert body.frame.reset_index(drop=True).equals(DF)
    json.loads(request_bytes(body.request))  # strict JSON


@pytest.mark.parametrize("text, fmt, frame_cols", [
    ('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}', "messages", None),
    ('{"prompt": "Once upon", "temperature": 0.2}', "prompt", None),
    ('{"input": ["a", "b"]}', "input", ["input"]),
    ('{"input": "a"}', "input", ["input"]),
    ('{"instances": [[1, 2], [3, 4]]}', "instances", ["instance"]),
    ('{"inputs": [[1, 2], [3, 4]]}', "inputs", ["input"]),
    ('{"dataframe_records": [{"x": 1}], "params": {"sleep_ms": 5}}', "dataframe_records", ["x"]),
])
def test_other_databricks_formats(text, fmt, frame_cols):
    body = parse_body(text, {})
    assert body.format == fmt
    assert body.request == json.loads(text)
    assert (body.frame is None) == (frame_cols is None)
    if frame_cols:
        assert list(body.frame.columns) == frame_cols


def test_params_are_kept_and_dataframe_var_goes_as_split():
    body = parse_body('{"dataframe_split": $df, "params": {"k": $k}}', {"df": DF, "k": np.int64(3)})
    assert body.request["dataframe_split"] == {"columns": ["a", "b"], "data": [[1.0, "x"], [2.0, "y"]]}
    assert body.request["params"] == {"k": 3}


def test_vars_inside_json_are_substituted_outside_strings_only():
    ns = {"q": "what's $up", "n": 2, "df": DF}
    text = '{"messages": [{"role": "user", "content": $q}], "n": $n, "stop": ["$n", "{x}"]}'
    out = json.loads(substitute_variables(text, ns))
    assert out == {"messages": [{"role": "user", "content": "what's $up"}], "n": 2, "stop": ["$n", "{x}"]}
    # escaped quotes inside strings do not end the string
    assert json.loads(substitute_variables(r'{"s": "a \"$n\" b", "v": $n}', ns)) == {"s": 'a "$n" b', "v": 2}
    # a DataFrame elsewhere becomes records
    assert json.loads(substitute_variables('{"dataframe_records": $df}', ns))["dataframe_records"] == [
        {"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]


@pytest.mark.parametrize("value, fmt", [
    (DF, "dataframe_split"),
    (DF["a"], "dataframe_split"),
    ({"dataframe_records": [{"a": 1}]}, "dataframe_records"),
    ({"a": 1, "b": "x"}, "dataframe_split"),
    ([{"a": 1}], "dataframe_records"),
    ([[1, 2], [3, 4]], "instances"),
    (np.array([[1.0, 2.0]]), "instances"),
    ('{"instances": [[1]]}', "instances"),
    ("a,b\n1,2\n", "dataframe_split"),
])
def test_values(value, fmt):
    body = body_from_value(value, source="$v")
    assert body.format == fmt
    json.loads(request_bytes(body.request))


def test_nan_and_timestamps_become_strict_json():
    df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]), "v": [math.nan]})
    body = body_from_value(df)
    payload = json.loads(request_bytes(body.request))
    assert payload["dataframe_split"]["data"] == [["2024-01-01T00:00:00.000", None]]
    assert jsonable({"x": float("inf"), "y": np.float32(1.5), "z": pd.Timestamp("2024-01-02")}) == {
        "x": None, "y": 1.5, "z": "2024-01-02T00:00:00"}


@pytest.mark.parametrize("text, ns, message", [
    ("", {}, "The query body is empty"),
    ("  \n ", {}, "The query body is empty"),
    ('{"dataframe_records": [}', {}, "Malformed JSON body at line 1, column 24"),
    ('{\n  "a": 1,\n}', {}, "Malformed JSON body at line 3, column 1"),
    ("a,b\n1,2\n3,4,5\n", {}, "line 3 has 3 fields, the header has 2"),
    ("a,b\n", {}, "header without rows"),
    ("hello", {}, "header without rows"),
    ("$nope", {}, "Unknown variable $nope"),
    ('{"inputs": $nope}', {}, "Unknown variable $nope"),
    ('{"inputs": $}', {}, "is not followed by a variable name"),
    ("$df.head()", {"df": DF}, "is not a variable reference"),
    ('{"dataframe_records": [], "instances": []}', {}, "has both dataframe_records and instances"),
    ('{"dataframe_split": {"columns": ["a"]}}', {}, "needs an object with 'columns' and 'data'"),
    ('{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}', {}, "row 1 has 1 values but there are 2 columns"),
    ('{"messages": "hi"}', {}, "messages must be a list"),
    ('{"rows": {"a": 1}}', {}, "unknown keys 'rows'"),
    ('{"params": {}}', {}, "has no model input"),
    ("{}", {}, "is an empty object"),
    ("[]", {}, "is an empty list"),
    ("$df", {"df": pd.DataFrame({"a": []})}, "$df is a DataFrame without rows"),
    ("$n", {"n": 3}, "$n is an int"),
    ("$s", {"s": "just words"}, "header without rows"),
    ("$o", {"o": object()}, "$o is an object"),
])
def test_bad_bodies_are_one_line_errors(text, ns, message):
    with pytest.raises(BodyError) as info:
        parse_body(text, ns)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------- results

def test_predictions_shapes():
    assert list(predictions_frame([0, 1, 2])["prediction"]) == [0, 1, 2]
    assert list(predictions_frame([{"label": "a", "p": 0.9}]).columns) == ["label", "p"]
    assert list(predictions_frame({"label": ["a", "b"], "p": [0.9, 0.1]})["p"]) == [0.9, 0.1]
    assert predictions_frame([[0.1, 0.9], [0.8, 0.2]])["prediction"].tolist() == [[0.1, 0.9], [0.8, 0.2]]
    assert list(predictions_frame({"label": "a"}).columns) == ["label"]
    assert predictions_frame(3.5)["prediction"].tolist() == [3.5]


def test_align_puts_inputs_first_and_renames_clashes():
    inputs = pd.DataFrame({"x": [1.0, 2.0]}, index=[10, 11])
    out = align(inputs, pd.DataFrame({"x": [2.0, 4.0], "y": [0, 1]}))
    assert list(out.columns) == ["x", "x_prediction", "y"] and list(out["x_prediction"]) == [2.0, 4.0]
    assert list(out.index) == [10, 11]  # the input index is kept: results join back
    # row counts differ: outputs alone
    assert list(align(inputs, pd.DataFrame({"p": [1]})).columns) == ["p"]


def test_shape_chat_completions_embeddings_and_raw():
    chat = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"},
                        {"index": 1, "message": {"role": "assistant", "content": "Hello"},
                         "finish_reason": "length"}],
            "usage": {"total_tokens": 7}}
    frame, kind = shape_response(chat)
    assert kind == "chat"
    assert frame.to_dict("records") == [
        {"index": 0, "role": "assistant", "content": "Hi!", "finish_reason": "stop"},
        {"index": 1, "role": "assistant", "content": "Hello", "finish_reason": "length"}]
    frame, kind = shape_response({"choices": [{"index": 0, "text": "and then", "finish_reason": "stop"}]},
                                 {"prompt": "Once upon a time"})
    assert kind == "completions"
    assert frame.to_dict("records") == [{"index": 0, "prompt": "Once upon a time", "text": "and then",
                                         "finish_reason": "stop"}]
    emb = {"object": "list", "data": [{"embedding": [0.3, 0.4], "index": 1}, {"embedding": [0.1, 0.2], "index": 0}]}
    frame, kind = shape_response(emb, {"input": ["first", "second"]})
    assert kind == "embeddings"
    assert frame.to_dict("list") == {"input": ["first", "second"], "embedding": [[0.1, 0.2], [0.3, 0.4]]}
    frame, kind = shape_response({"something": 1})
    assert kind == "raw" and frame["response"].iloc[0] == {"something": 1}


def test_query_result_frame_shows_a_footer_and_stays_a_dataframe():
    result = make_result("ep", {"predictions": [1, 0]}, {"dataframe_records": [{"x": 1}, {"x": 2}]},
                         pd.DataFrame({"x": [1, 2]}), 12.3, "m-1")
    frame = result.frame
    assert isinstance(frame, QueryFrame) and isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["x", "prediction"]
    assert "endpoint ep · latency 12 ms · served-model-name m-1" in repr(frame)
    assert "served-model-name m-1" in frame._repr_html_()
    derived = frame[["x"]]
    assert type(derived) is pd.DataFrame  # no stale footer on derived frames
    assert result.kind == "predictions" and json.loads(result.json()) == {"predictions": [1, 0]}
