"""Public: the exception hierarchy of jupyter-serving (`from jupyter_serving.errors import ServingError`).

Defined in `jupyter_serving.core.errors`; this module only re-exports it.
"""
from jupyter_serving.core.errors import *  # noqa: F403
from jupyter_serving.core.errors import __all__  # noqa: F401
