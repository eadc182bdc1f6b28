"""Shared fixtures: one real local backend per test session, real MLflow models registered in it.

Everything runs on loopback against real processes: the backend (`python -m jupyter_serving.local`),
MLflow's scoring servers it supervises, and models trained here.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from jupyter_serving.client import localctl

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def poll(predicate, timeout=60.0, interval=0.1, message="condition"):
    """Call `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message} (last value: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# Tiers. `pytest -m "not backend"` is the fast tier: no local backend, no Jupyter server, no browser,
# no notebook. Tests are put in a tier by what they use, so no test can forget its marker.
BACKEND_FIXTURES = {"local_backend", "lab_server", "browser", "browser_page", "jp_serverapp"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        is_notebook = item.parent.__class__.__name__ == "IPyNbFile"
        if is_notebook or names & BACKEND_FIXTURES:
            item.add_marker(pytest.mark.backend)
        if names & {"browser", "browser_page"}:
            item.add_marker(pytest.mark.browser)
        if is_notebook:
            item.add_marker(pytest.mark.notebook)


@pytest.fixture(scope="session")
def backend_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jshome")


@pytest.fixture(scope="session")
def local_backend(backend_home):
    """A running backend in a private data dir; its env vars are exported for the whole session so
    that databricks-sdk, mlflow and our API all target it."""
    info, _ = localctl.start(backend_home, extra_args=["--scale-to-zero-idle", "3"])
    saved = {k: os.environ.get(k) for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_URI",
                                            "MLFLOW_REGISTRY_URI", "JUPYTER_SERVING_HOME",
                                            "DATABRICKS_CONFIG_FILE")}
    os.environ.update(info.env())
    os.environ["JUPYTER_SERVING_HOME"] = str(backend_home)
    os.environ["DATABRICKS_CONFIG_FILE"] = str(backend_home / "no-databrickscfg")
    import mlflow

    mlflow.set_tracking_uri(info.env()["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(info.env()["MLFLOW_REGISTRY_URI"])
    yield info
    localctl.stop(backend_home)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _register(model_name: str, log_fn) -> str:
    import cloudpickle
    import mlflow

    import tests.models

    # Pickle our test models by value: the scoring server cannot import the tests package.
    cloudpickle.register_pickle_by_value(tests.models)

    with mlflow.start_run():
        info = log_fn()
    version = mlflow.register_model(info.model_uri, model_name)
    return str(version.version)


@pytest.fixture(scope="session")
def iris_models(local_backend):
    """`main.ml.iris` versions 1 and 2: scikit-learn classifiers with a signature."""
    import mlflow
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    X = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    y = iris.target
    name = "main.ml.iris"
    versions = []
    for model in (LogisticRegression(max_iter=500).fit(X, y), LogisticRegression(C=0.05, max_iter=500).fit(X, y)):
        versions.append(_register(name, lambda m=model: mlflow.sklearn.log_model(
            m, name="model", input_example=X.head(3))))
    return {"name": name, "versions": versions, "X": pd.DataFrame(X)}


@pytest.fixture(scope="session")
def sleep_model(local_backend):
    """`main.ml.sleeper` version 1: a pyfunc that sleeps `params.sleep_ms` (default 50 ms) per call
    and echoes its input's `x` column doubled."""
    import mlflow
    import pandas as pd

    from tests.models import SleepModel

    example = pd.DataFrame({"x": [1.0, 2.0]})
    version = _register("main.ml.sleeper", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=SleepModel(), input_example=(example, {"sleep_ms": 50.0})))
    return {"name": "main.ml.sleeper", "version": version}


@pytest.fixture(scope="session")
def chat_model(local_backend):
    """`main.ml.echo_chat` version 1: a ChatModel that answers `echo: <last message>`."""
    import mlflow

    from tests.models import EchoChatModel

    version = _register("main.ml.echo_chat", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=EchoChatModel()))
    return {"name": "main.ml.echo_chat", "version": version}


@pytest.fixture(scope="session")
def broken_model(local_backend):
    """`main.ml.broken` version 1: a pyfunc whose load_context raises, so serving it fails."""
    import mlflow

    from tests.models import BrokenModel

    version = _register("main.ml.broken", lambda: mlflow.pyfunc.log_model(
        name="model", python_model=BrokenModel()))
    return {"name": "main.ml.broken", "version": version}


# Browser-test fixtures (jupyter lab + Chromium/Playwright), shared by the lab panel and widget tests.
pytest_plugins = ["tests.browser_support", "tests.genai_fixtures"]
