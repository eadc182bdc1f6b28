"""jupyter-serving: model serving, driven from the notebook."""
from jupyter_serving._version import __version__  # noqa: F401  (re-exported)


def load_ipython_extension(ip):
    """`%load_ext jupyter_serving`: register %serve and %%query (imports stay light)."""
    from jupyter_serving.magics import load_ipython_extension as _load

    _load(ip)


def unload_ipython_extension(ip):
    from jupyter_serving.magics import unload_ipython_extension as _unload

    _unload(ip)


# JupyterLab: the "Model Serving" sidebar (labextension) and its server extension. Kept light: the
# server extension module is imported only when jupyter_server loads it.


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-serving"}]


def _jupyter_server_extension_points():
    return [{"module": "jupyter_serving"}]


def _load_jupyter_server_extension(server_app):
    from jupyter_serving.serverext import load_jupyter_server_extension as _load

    _load(server_app)
