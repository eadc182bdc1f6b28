"""nbval runs each tutorial against a fresh local backend of its own: a new JUPYTER_SERVING_HOME per
notebook (set before nbval starts its kernel), stopped when the notebook's last cell has run."""
from __future__ import annotations

import os
import tempfile

import pytest

from jupyter_serving import localctl

_WORKSPACE_VARS = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "MLFLOW_TRACKING_URI",
                   "MLFLOW_REGISTRY_URI")
_current: dict = {}


def _notebook_of(item):
    return item.parent if item.parent.__class__.__name__ == "IPyNbFile" else None


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
