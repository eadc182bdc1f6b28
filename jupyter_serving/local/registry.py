"""The local MLflow model registry (SQLite) behind the backend: resolve model versions, read signatures."""
from __future__ import annotations

import json
from pathlib import Path

from jupyter_serving.core.rules import RESOURCE_DOES_NOT_EXIST, RuleViolation


class Registry:
    def __init__(self, mlflow_uri: str, artifact_root: Path):
        self.uri = mlflow_uri
        self.artifact_root = artifact_root
        self._client = None

    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def initialize(self) -> None:
        """Create the tracking/registry schema and a Default experiment whose artifacts live in the
        data dir (MLflow's own default would be ./mlruns under whatever the caller's cwd is)."""
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        self.artifact_root.mkdir(parents=True, exist_ok=True)
        SqlAlchemyStore(self.uri, self.artifact_root.as_uri())
        self.client()

    def resolve(self, name: str, version: str) -> str:
        """The local path of a registered model version; RuleViolation if it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            self.client().get_model_version(name, str(version))
            uri = self.client().get_model_version_download_uri(name, str(version))
        except MlflowException as exc:
            known = self._versions(name)
            if known is None:
                raise RuleViolation(
                    f"Registered model '{name}' does not exist in the registry at {self.uri}; "
                    "register it first (mlflow.register_model).",
                    RESOURCE_DOES_NOT_EXIST,
                ) from exc
            raise RuleViolation(
                f"Model '{name}' has no version {version}; available versions: "
                f"{', '.join(known) or 'none'}.",
                RESOURCE_DOES_NOT_EXIST,
            ) from exc
        return uri[len("file://"):] if uri.startswith("file://") else uri

    def _versions(self, name: str) -> list[str] | None:
        from mlflow.exceptions import MlflowException

        try:
            self.client().get_registered_model(name)
        except MlflowException:
            return None
        found = self.client().search_model_versions(f"name = '{name}'")
        return sorted((str(v.version) for v in found), key=int)


def read_model_metadata(model_path: str) -> dict:
    """Signature (inputs, outputs, params) and input example of a logged model, from its files."""
    import yaml

    result: dict = {"inputs": None, "outputs": None, "params": None, "example": None, "task": None}
    mlmodel = Path(model_path) / "MLmodel"
    if not mlmodel.exists():
        return result
    meta = yaml.safe_load(mlmodel.read_text())
    result["task"] = (meta.get("metadata") or {}).get("task")
    sig = meta.get("signature") or {}
    for key in ("inputs", "outputs", "params"):
        if sig.get(key):
            result[key] = json.loads(sig[key])
    example_info = meta.get("saved_input_example_info") or {}
    example_file = Path(model_path) / example_info.get("artifact_path", "input_example.json")
    if example_file.exists():
        try:
            result["example"] = json.loads(example_file.read_text())
        except json.JSONDecodeError:
            pass
    return result
