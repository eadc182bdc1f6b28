"""Small pyfunc models the tests log and serve (importable by the scoring server via cloudpickle)."""
import time

import mlflow.pyfunc


class SleepModel(mlflow.pyfunc.PythonModel):
    """Sleeps a known time per call, so that runtime, QPS and concurrency are predictable."""

    def predict(self, context, model_input, params=None):
        time.sleep(float((params or {}).get("sleep_ms", 50.0)) / 1000.0)
        return model_input[["x"]].astype(float) * 2


class BrokenModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("weights are corrupt (this model fails to load on purpose)")

    def predict(self, context, model_input, params=None):
        return model_input
