"""jupyter-serving: model serving, driven from the notebook."""
__version__ = "0.1.0"


def load_ipython_extension(ip):
    """`%load_ext jupyter_serving`: register %serve and %%query (imports stay light)."""
    from .magics import load_ipython_extension as _load

    _load(ip)


def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as _unload

    _unload(ip)


# JupyterLab: the "Model Serving" sidebar (labextension) and its server extension. Kept light: the
# server extension module is imported only when jupyter_server loads it.


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-serving"}]


def _jupyter_server_extension_points():
    return [{"module": "jupyter_serving"}]


def _load_jupyter_server_extension(server_app):
    from .serverext import load_jupyter_server_extension as _load

    _load(server_app)
