"""jupyter-serving: model serving, driven from the notebook."""
__version__ = "0.1.0"
