"""The registered models the create form offers: names, versions, artifact size and flavors.

`ModelCatalog` reads the MLflow model registry of the connected backend:

- the local backend: its own MLflow registry (the URI it reports over HTTP; MLFLOW_REGISTRY_URI
  otherwise, which `open_client` points at it);
- a Databricks workspace: MLFLOW_REGISTRY_URI if set, else Unity Catalog (`databricks-uc`, with the
  client's profile when it has one).

mlflow is imported when a catalog is first used (the form does that from a background thread),
never at `import jupyter_serving` time. `StaticCatalog` serves fixed data (demos, tests).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

MAX_LISTED_FILES = 5000


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    size_bytes: int | None = None  # artifact size; None when it could not be read
    flavors: tuple[str, ...] = ()
    source: str = ""
    error: str = ""  # why size/flavors are missing
    task: str = ""  # the MLmodel metadata task (agent/v1/responses, llm/v1/chat, ...); '' when none


class StaticCatalog:
    """A catalog over fixed data: {model: {version: ModelInfo or size in bytes}}."""

    def __init__(self, models: Mapping[str, Mapping[str, Any]], description: str = "a fixed model list"):
        self._models = {m: dict(v) for m, v in models.items()}
        self.description = description

    def models(self) -> list[str]:
        return sorted(self._models)

    def versions(self, model: str) -> list[str]:
        return sorted(self._models.get(model, {}), key=_version_key, reverse=True)

    def info(self, model: str, version: str) -> ModelInfo:
        value = self._models.get(model, {}).get(str(version))
        if isinstance(value, ModelInfo):
            return value
        if isinstance(value, Mapping):
            return ModelInfo(model, str(version), value.get("size_bytes"), tuple(value.get("flavors", ())),
                             task=str(value.get("task") or ""))
        return ModelInfo(model, str(version), value if isinstance(value, int) else None)


def _version_key(v: str) -> tuple:
    return (0, int(v), "") if str(v).isdigit() else (1, 0, str(v))


class ModelCatalog:
    """The connected backend's MLflow registry. Thread-safe; results are cached per catalog."""

    def __init__(self, client: Any = None, *, registry_uri: str | None = None, tracking_uri: str | None = None):
        self.client = client
        self._registry_uri = registry_uri
        self._tracking_uri = tracking_uri
        self._mlflow = None
        self._lock = threading.Lock()
        self._info: dict[tuple[str, str], ModelInfo] = {}

    # -- where ------------------------------------------------------------------------------------
    def _uris(self) -> tuple[str, str]:
        if self._registry_uri:
            return self._registry_uri, self._tracking_uri or self._registry_uri
        client = self.client
        if client is not None and getattr(client, "is_local", False):
            uri = _local_mlflow_uri(client)
            if uri:
                return uri, uri
        env_registry = os.environ.get("MLFLOW_REGISTRY_URI")
        env_tracking = os.environ.get("MLFLOW_TRACKING_URI")
        if env_registry:
            return env_registry, env_tracking or env_registry
        profile = getattr(getattr(client, "target", None), "profile", None)
        suffix = f"://{profile}" if profile else ""
        return f"databricks-uc{suffix}", env_tracking or f"databricks{suffix}"

    @property
    def description(self) -> str:
        registry, _ = self._uris()
        if registry.startswith("databricks-uc"):
            return "Unity Catalog"
        if registry.startswith("sqlite:"):
            return "the local MLflow registry"
        return f"the MLflow registry at {registry}"

    def _mlflow_client(self):
        with self._lock:
            if self._mlflow is None:
                from mlflow.tracking import MlflowClient

                registry, tracking = self._uris()
                self._mlflow = MlflowClient(tracking_uri=tracking, registry_uri=registry)
            return self._mlflow

    # -- what ----------------------------------------------------------------------------------
    def models(self) -> list[str]:
        client = self._mlflow_client()
        names: list[str] = []
        token = None
        while True:
            page = client.search_registered_models(max_results=200, page_token=token)
            names.extend(m.name for m in page)
            token = getattr(page, "token", None)
            if not token or len(names) >= 5000:
                break
        return sorted(set(names))

    def versions(self, model: str) -> list[str]:
        found = self._mlflow_client().search_model_versions(f"name='{_quote(model)}'")
        return sorted({str(v.version) for v in found}, key=_version_key, reverse=True)

    def info(self, model: str, version: str) -> ModelInfo:
        key = (model, str(version))
        with self._lock:
            cached = self._info.get(key)
        if cached is not None:
            return cached
        client = self._mlflow_client()
        try:
            uri = client.get_model_version_download_uri(model, str(version))
        except Exception as err:  # noqa: BLE001 - shown in the form, never raised
            return ModelInfo(model, str(version), error=_one_line(err))
        size, flavors, error, task = None, (), "", ""
        try:
            size, flavors, task = _model_facts(uri)
        except Exception as err:  # noqa: BLE001
            error = _one_line(err)
        info = ModelInfo(model, str(version), size, flavors, uri, error, task)
        with self._lock:
            self._info[key] = info
        return info


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _local_mlflow_uri(client: Any) -> str | None:
    """The MLflow URI the local backend serves models from (it reports it over HTTP)."""
    try:
        info = client.workspace.api_client.do("GET", "/api/2.0/jupyter-serving/backend")
    except Exception:  # noqa: BLE001 - fall back to MLFLOW_REGISTRY_URI (set by open_client)
        return None
    return (info or {}).get("mlflow_uri") or None


def _artifact_facts(uri: str) -> tuple[int | None, tuple[str, ...]]:
    """(total size in bytes, MLmodel flavors) of the model artifacts at `uri`."""
    size, flavors, _ = _model_facts(uri)
    return size, flavors


def _model_facts(uri: str) -> tuple[int | None, tuple[str, ...], str]:
    """(total size in bytes, MLmodel flavors, MLmodel metadata task) of the model artifacts at `uri`."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return (_dir_size(path), *_mlmodel_facts(os.path.join(path, "MLmodel")))
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(uri)
    total, listed, stack = 0, 0, [None]
    while stack and listed < MAX_LISTED_FILES:
        for item in repo.list_artifacts(stack.pop()):
            listed += 1
            if item.is_dir:
                stack.append(item.path)
            else:
                total += int(item.file_size or 0)
    facts: tuple[tuple[str, ...], str] = ((), "")
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = repo.download_artifacts("MLmodel", tmp)
            facts = _mlmodel_facts(local)
    except Exception:  # noqa: BLE001 - flavors are a hint only
        pass
    return (total, *facts)


def _dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def _mlmodel_facts(path: str) -> tuple[tuple[str, ...], str]:
    """(flavors, metadata task) of an MLmodel file; ((), '') when it cannot be read."""
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            meta = yaml.safe_load(fh) or {}
        task = (meta.get("metadata") or {}).get("task") if isinstance(meta.get("metadata"), dict) else None
        return tuple(sorted((meta.get("flavors") or {}).keys())), str(task or "")
    except Exception:  # noqa: BLE001 - missing file, yaml errors: flavors are a hint only
        return (), ""

