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
    """A random test order (pytest-randomly) may shuffle notebooks among the tests, never the cells of
    a notebook: put each notebook's cells back in order, in the slots they were given."""
    slots: dict = {}
    for i, item in enumerate(items):
        notebook = _notebook_of(item)
        if notebook is not None:
            slots.setdefault(notebook, []).append(i)
    for positions in slots.values():
        cells = sorted((items[i] for i in positions), key=_cell_number)
        for i, cell in zip(positions, cells):
            items[i] = cell


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    notebook = _notebook_of(item)
    if notebook is None or _current.get("notebook") is notebook:
        return
    home = tempfile.mkdtemp(prefix=f"nb-{notebook.path.stem}-")
    _current.update(notebook=notebook, home=home)
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
