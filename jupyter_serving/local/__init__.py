"""The embedded local backend: a separate program (`python -m jupyter_serving.local`) that speaks the
Databricks Model Serving REST API on loopback and serves models from a local MLflow registry.

The rest of the package reaches it only over HTTP (see `jupyter_serving.client.localctl`)."""
