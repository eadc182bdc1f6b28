"""jupyter-serving: model serving, driven from the notebook."""
__version__ = "0.1.0"


def load_ipython_extension(ip):
    """`%load_ext jupyter_serving`: register %serve and %%query (imports stay light)."""
    from .magics import load_ipython_extension as _load

    _load(ip)


def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as _unload

    _unload(ip)
