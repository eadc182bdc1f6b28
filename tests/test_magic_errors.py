"""A catalogue of bad inputs: each one fails with one line (what is wrong, how to fix it), no
traceback, and leaves the backend exactly as it was."""
from __future__ import annotations

import pytest
import requests

from jupyter_serving import api
from tests.conftest import unique
from tests.magic_helpers import ok, one_line_error, run, shell
from tests.serving_shared import saturated, shared_iris_endpoint

GOOD_ROW = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'


@pytest.fixture(scope="module")
def ip(local_backend):
    api.disconnect()
    ip = shell()
    ok(ip, "%serve connect")
    return ip


@pytest.fixture(scope="module")
def iris_ep(local_backend, iris_models):
    return shared_iris_endpoint(local_backend, iris_models)


@pytest.fixture(scope="module")
def sleep_ep(ip, sleep_model):
    name = unique("err-sleep")
    api.get_client().create(name, model=sleep_model["name"], version=sleep_model["version"], timeout=180)
    yield name
    api.get_client().delete(name)


@pytest.fixture(scope="module")
def stopped_ep(ip, sleep_model):
    """An endpoint of its own, stopped (sleep_ep stays running for the tests that query it)."""
    name = unique("err-stopped")
    api.get_client().create(name, model=sleep_model["name"], version=sleep_model["version"], timeout=180)
    api.get_client().stop(name)
    yield name
    api.get_client().delete(name)


def snapshot(backend) -> dict:
    """Everything the backend knows about every endpoint: full documents and permissions."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {backend.token}"
    docs = session.get(f"{backend.url}/api/2.0/serving-endpoints", timeout=30).json()["endpoints"]
    out = {}
    for doc in docs:
        perms = session.get(f"{backend.url}/api/2.0/permissions/serving-endpoints/{doc['id']}", timeout=30).json()
        out[doc["name"]] = {"doc": doc, "permissions": perms}
    return out


def test_throttled_query(ip, iris_ep, sleep_ep, local_backend):
    """429 while the served entity's concurrency is exhausted: one line, at once, no retry."""
    with saturated(local_backend, sleep_ep):
        for _ in range(200):
            ran = run(ip, f'%query {sleep_ep} {{"dataframe_records": [{{"x": 1.0}}]}}')
            if ran.error is not None:
                break
        message = one_line_error(ran)
    assert f"Endpoint '{sleep_ep}' is throttling queries (HTTP 429" in message
    assert "concurrency" in message


# (id, cell, expected substring). EP: the shared two-entity iris endpoint; STOPPED: a stopped one;
# NEW: a name that does not exist; PORT-less URLs are filled in by the test.
CATALOGUE = [
    ("unknown-endpoint", "%serve status NEW", "No serving endpoint named 'NEW'"),
    ("unknown-endpoint-query", "%query NEW $row", "No serving endpoint named 'NEW'"),
    ("invalid-name", "%serve create bad/name --model main.ml.iris --version 1",
     "Endpoint name 'bad/name' is invalid"),
    ("reserved-prefix", "%serve create databricks-x --model main.ml.iris --version 1", "prefix 'databricks-' is reserved"),
    ("name-exists", "%serve create EP --model main.ml.iris --version 1", "already exists"),
    ("traffic-sum", "%serve traffic EP iris-1=70 iris-2=20", "sum to 90; they must sum to 100"),
    ("traffic-unknown-entity", "%serve traffic EP iris-1=50 nope=50", "'nope', which is not a served entity"),
    ("traffic-not-integer", "%serve traffic EP iris-1=fifty iris-2=50", "'fifty' for 'iris-1' is not an integer"),
    ("create-traffic-sum", "%serve create NEW --model main.ml.iris --version 1 --model main.ml.iris --version 2 "
                           "--traffic iris-1=50 iris-2=60", "sum to 110"),
    ("unknown-model", "%serve create NEW --model main.ml.nope --version 1", "'main.ml.nope' does not exist"),
    ("unknown-version", "%serve create NEW --model main.ml.iris --version 99", "no version 99"),
    ("unknown-model-no-version", "%serve create NEW --model main.ml.nope", "'main.ml.nope' is not registered"),
    ("concurrency-step", "%serve create NEW --model main.ml.iris --version 1 --min-concurrency 3 "
                         "--max-concurrency 8", "multiple of 4"),
    ("size-and-concurrency", "%serve create NEW --model main.ml.iris --version 1 --workload-size Small "
                             "--min-concurrency 4 --max-concurrency 8", "cannot be combined"),
    ("unknown-workload-type", "%serve create NEW --model main.ml.iris --version 1 --workload-type GPU_HUGE",
     "unknown workload type 'GPU_HUGE'"),
    ("workload-type-other-cloud", "%serve create NEW --model main.ml.iris --version 1 --workload-type GPU_LARGE_2",
     "not offered on AWS"),
    ("bad-workload-size", "%serve create NEW --model main.ml.iris --version 1 --workload-size Huge",
     "workload_size 'Huge' is invalid"),
    ("bad-int-option", "%serve create NEW --model main.ml.iris --version 1 --min-concurrency x",
     "invalid int value: 'x'"),
    ("option-before-model", "%serve create NEW --version 1", "--version must follow a --model"),
    ("missing-name", "%serve create", "the following arguments are required: name"),
    ("nothing-to-serve", "%serve create NEW", "Nothing to serve"),
    ("from-json-missing-file", "%serve create NEW --from-json /no/such/config.json", "No such file"),
    ("from-json-bad-var", "%serve create NEW --from-json $nope", "Unknown variable $nope"),
    ("unknown-subcommand", "%serve stats EP", "Did you mean `%serve status`?"),
    ("unknown-option", "%serve list --bogus", "unrecognized arguments: --bogus"),
    ("unbalanced-quote", '%serve tags EP "a=b', "No closing quotation"),
    ("delete-without-yes", "%serve delete EP", "cannot be undone; nothing was deleted"),
    ("delete-unknown", "%serve delete NEW --yes", "No serving endpoint named 'NEW'"),
    ("update-nothing", "%serve update EP", "Nothing to update"),
    ("update-ambiguous-entity", "%serve update EP --version 2", "serves several entities (iris-1, iris-2)"),
    ("update-unknown-entity", "%serve update EP --entity nope --version 2", "has no served entity 'nope'"),
    ("update-stopped", "%serve update STOPPED --workload-size Medium", "is stopped"),
    ("logs-unknown-entity", "%serve logs EP nope", "has no served entity 'nope'"),
    ("logs-bad-tail", "%serve logs EP iris-1 --tail 0", "--tail must be a positive"),
    ("tags-remove-unknown", "%serve tags EP --remove nope", "has no tag 'nope'"),
    ("tags-no-value", "%serve tags EP novalue", "Tag 'novalue' has no value"),
    ("permission-level", "%serve permissions EP --grant bob@example.com OWNER", "Unknown permission level 'OWNER'"),
    ("query-stopped", "%query STOPPED $sleep_row", "is stopped and refuses queries"),
    ("query-malformed-json", '%%query EP\n{"dataframe_records": [}', "Malformed JSON body at line 1, column 24"),
    ("query-malformed-csv", "%%query EP\nsepal_length,sepal_width\n1,2\n3,4,5", "line 3 has 3 fields, the header has 2"),
    ("query-unknown-var", "%query EP $nope", "Unknown variable $nope"),
    ("query-unknown-var-in-json", '%%query EP\n{"dataframe_records": $nope}', "Unknown variable $nope"),
    ("query-two-inputs", '%%query EP\n{"dataframe_records": [' + GOOD_ROW + '], "instances": [[1]]}',
     "has both dataframe_records and instances"),
    ("query-unknown-keys", '%%query EP\n{"rows": {"a": [1, 2]}}', "unknown keys 'rows'"),
    ("query-empty-body", "%%query EP\n   \n", "The query body is empty"),
    ("query-no-body", "%query EP", "%query needs a body"),
    ("query-wrong-columns", '%%query EP\n{"dataframe_records": [{"foo": 1}]}', "refused the input"),
    ("query-unknown-entity", "%%query EP --entity nope\n$row", "has no served entity 'nope'"),
    ("query-bad-output-var", "%%query EP -o 1x\n$row", "-o 1x: not a valid variable name"),
    ("query-bad-timeout", "%%query EP --timeout -1\n$row", "Timeout must be positive"),
    ("query-var-type", "%query EP $an_int", "$an_int is an int"),
    ("query-csv-header-only", "%%query EP\nsepal_length,sepal_width\n", "header without rows"),
    ("unreachable-workspace", "%serve connect --host http://127.0.0.1:9", "Cannot reach the Databricks workspace"),
    ("unknown-profile", "%serve connect --profile nope", "No profile 'nope'"),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_one_line_and_changes_nothing(case, ip, iris_ep, stopped_ep, local_backend, iris_models):
    _, cell, expected = case
    new = unique("never")
    cell = cell.replace("NEW", new).replace("EP", iris_ep).replace("STOPPED", stopped_ep)
    expected = expected.replace("NEW", new)
    ip.user_ns.update(row=iris_models["X"].head(1), sleep_row=[{"x": 1.0}], an_int=3)
    ip.user_ns.pop("nope", None)
    client_before = api.current_client()
    before = snapshot(local_backend)
    message = one_line_error(run(ip, cell))
    print(f"{case[0]}: {message}")  # the catalogue, readable with pytest -s
    assert expected in message, message
    assert snapshot(local_backend) == before
    assert api.current_client() is client_before


def test_missing_credentials(ip, local_backend, monkeypatch):
    """A workspace host without any credentials: one line that says how to provide them."""
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    client_before = api.current_client()
    before = snapshot(local_backend)
    message = one_line_error(run(ip, f"%serve connect --host {local_backend.url}"))
    assert "No usable credentials" in message and "DATABRICKS_TOKEN" in message
    assert snapshot(local_backend) == before and api.current_client() is client_before


def test_update_while_updating(ip, iris_models, local_backend):
    name = unique("err-busy")
    ok(ip, f"%serve create {name} --model {iris_models['name']} --version 1 --no-wait")
    try:
        doc_before = snapshot(local_backend)[name]["doc"]
        message = one_line_error(run(ip, f"%serve update {name} --workload-size Medium"))
        assert f"Endpoint '{name}' is already updating (config v1)" in message and "--watch" in message
        message = one_line_error(run(ip, f"%serve stop {name}"))
        assert "already updating" in message
        doc_after = snapshot(local_backend)[name]["doc"]
        assert doc_after["pending_config"]["config_version"] == doc_before["pending_config"]["config_version"]
        strip = [{k: v for k, v in e.items() if k != "state"}
                 for e in doc_after["pending_config"]["served_entities"]]
        assert strip == [{k: v for k, v in e.items() if k != "state"}
                         for e in doc_before["pending_config"]["served_entities"]]
    finally:
        ok(ip, f"%serve delete {name} --yes")


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) + 3 >= 20
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_errors_raise_for_nbval_when_asked(ip, iris_ep):
    """With raise_errors the cell fails with a real exception (nbval/papermill see an error)."""
    from jupyter_serving.core.errors import InvalidInputError

    ok(ip, "%config ServeMagics.raise_errors = True")
    try:
        ran = run(ip, f"%serve traffic {iris_ep} iris-1=70 iris-2=20")
        assert isinstance(ran.error, InvalidInputError)
        assert ran.out.strip().startswith("InvalidInputError: Traffic percentages sum to 90")
        assert "Traceback" not in ran.out
    finally:
        ok(ip, "%config ServeMagics.raise_errors = False")
