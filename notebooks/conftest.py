"""nbval runs each tutorial against a fresh local backend of its own: a new JUPYTER_SERVING_HOME per
notebook (set before nbval starts its kernel), stopped when the notebook's last cell has run."""
from __future__ import annotations

import os
import tempfile

import pytest

from jupyter_serving.client import localctl

_WORKSPACE_VARS = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "MLFLOW_TRACKING_URI",
                   "MLFLOW_REGISTRY_URI")
_current: dict = {}


def _notebook_of(item):
    return item.parent if item.parent.__class__.__name__ == "IPyNbFile" else None


def _cell_number(item) -> int:
    return int(item.name.rsplit(" ", 1)[-1]) if item.name.rsplit(" ", 1)[-1].isdigit() else 0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """A random test order (pytest-randomly) may move notebooks among the tests, never break one up:
    each notebook's cells run together and in order, where its first cell was put."""
    cells: dict = {}
    for item in items:
        notebook = _notebook_of(item)
        if notebook is not None:
            cells.setdefault(notebook, []).append(item)
    if not cells:
        return
    ordered = []
    for item in items:
        notebook = _notebook_of(item)
        if notebook is None:
            ordered.append(item)
        elif notebook in cells:
            ordered.extend(sorted(cells.pop(notebook), key=_cell_number))
    items[:] = ordered


_ENV_VARS = ("JUPYTER_SERVING_HOME", "DATABRICKS_CONFIG_FILE", "MPLBACKEND", *_WORKSPACE_VARS)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    notebook = _notebook_of(item)
    if notebook is None or _current.get("notebook") is notebook:
        return
    home = tempfile.mkdtemp(prefix=f"nb-{notebook.path.stem}-")
    # what the tests around the notebook use (a session backend's variables) comes back afterwards
    _current.update(notebook=notebook, home=home, saved={k: os.environ.get(k) for k in _ENV_VARS})
    os.environ["JUPYTER_SERVING_HOME"] = home
    # the tutorials run against the local backend, whatever workspace this machine is configured for
    for var in _WORKSPACE_VARS:
        os.environ.pop(var, None)
    os.environ["DATABRICKS_CONFIG_FILE"] = os.path.join(home, "no-databrickscfg")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    notebook = _notebook_of(item)
    if notebook is not None and (nextitem is None or _notebook_of(nextitem) is not notebook):
        localctl.stop(_current["home"])
        for key, value in _current.pop("saved", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _current.pop("notebook", None)
