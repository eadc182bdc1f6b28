"""What an `external_model` of a served entity must hold (pure, as `core.rules`, which calls it).

Databricks' providers are listed; the local backend serves `openai` only, which with `openai_api_base`
reaches any OpenAI-compatible server. A key is never echoed in a message (it may have been pasted
into the wrong field), nor is a URL that carries credentials.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jupyter_serving.core.rules import SECRET_REFERENCE_FORM, RuleViolation, secret_reference

EXTERNAL_PROVIDERS = ("ai21labs", "amazon-bedrock", "anthropic", "cohere", "custom", "databricks-model-serving",
                      "google-cloud-vertex-ai", "openai", "palm")
EXTERNAL_TASKS = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")
_ENTRA_FIELDS = ("microsoft_entra_client_id", "microsoft_entra_client_secret",
                 "microsoft_entra_client_secret_plaintext", "microsoft_entra_tenant_id")


def _validate_api_base(url: Any, label: str) -> None:
    if not isinstance(url, str) or not url.strip():
        raise RuleViolation(f"{label}: openai_config.openai_api_base must be an http(s) URL, e.g. "
                            "'http://127.0.0.1:8000/v1'.")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is not None and (parts.username or parts.password):  # not echoed: it holds credentials
        raise RuleViolation(f"{label}: openai_config.openai_api_base carries credentials; give the API key as "
                            "openai_api_key (a secret reference) instead.")
    if parts is None or parts.scheme not in ("http", "https") or not host or parts.fragment:
        raise RuleViolation(f"{label}: openai_config.openai_api_base {url[:200]!r} is not an http(s) URL; use e.g. "
                            "'http://127.0.0.1:8000/v1' (an OpenAI-compatible server) or 'https://api.openai.com/v1'.")


def _validate_openai_config(config: Any, label: str) -> None:
    needs_key = (f"openai_api_key (a '{SECRET_REFERENCE_FORM}' reference to a secret) or "
                 "openai_api_key_plaintext")
    if not isinstance(config, dict):
        raise RuleViolation(f"{label}: provider 'openai' needs openai_config with {needs_key}.")
    key, plain = config.get("openai_api_key"), config.get("openai_api_key_plaintext")
    if key in (None, "") and plain in (None, ""):
        raise RuleViolation(f"{label}: openai_config needs an API key: set {needs_key}.")
    if key not in (None, "") and plain not in (None, ""):
        raise RuleViolation(f"{label}: set only one of openai_api_key and openai_api_key_plaintext.")
    if key not in (None, "") and secret_reference(key) is None:  # never echoed: it may be a key pasted there
        raise RuleViolation(f"{label}: openai_api_key must be a secret reference '{SECRET_REFERENCE_FORM}'; store the "
                            "key with `jupyter-serving local secrets put SCOPE KEY`, or give it as "
                            "openai_api_key_plaintext.")
    if plain not in (None, "") and not isinstance(plain, str):
        raise RuleViolation(f"{label}: openai_api_key_plaintext must be a string.")
    if config.get("openai_api_base") is not None:
        _validate_api_base(config["openai_api_base"], label)
    if config.get("openai_api_type") not in (None, "", "openai"):
        raise RuleViolation(f"{label}: openai_api_type {str(config['openai_api_type'])[:40]!r} (Azure OpenAI) is not "
                            "available on the local backend; leave it unset and point openai_api_base at an "
                            "OpenAI-compatible server.")
    if any(config.get(f) not in (None, "") for f in _ENTRA_FIELDS):
        raise RuleViolation(f"{label}: Microsoft Entra ID authentication is not available on the local backend; "
                            "use openai_api_key.")


def validate_external_model(model: Any, label: str) -> None:
    """An `external_model`: a name, a provider the local backend serves, a task, and that provider's config."""
    if not isinstance(model, dict):
        raise RuleViolation(f"{label}: external_model must be a JSON object.")
    if not isinstance(model.get("name"), str) or not model["name"].strip():
        raise RuleViolation(f"{label}: external_model.name is required: the provider's model name, e.g. "
                            "'gpt-4o-mini'.")
    provider = model.get("provider")
    if provider not in EXTERNAL_PROVIDERS:
        raise RuleViolation(f"{label}: external_model.provider {str(provider)[:40]!r} is unknown; Databricks' "
                            f"providers are {', '.join(EXTERNAL_PROVIDERS)} (the local backend serves 'openai').")
    if provider != "openai":
        raise RuleViolation(f"{label}: provider '{provider}' is not available on the local backend; use 'openai' "
                            "with openai_api_base pointing at an OpenAI-compatible server.")
    if model.get("task") not in EXTERNAL_TASKS:
        raise RuleViolation(f"{label}: external_model.task {str(model.get('task'))[:40]!r} is invalid; use one of "
                            f"{', '.join(EXTERNAL_TASKS)}.")
    others = [k for k in model if k.endswith("_config") and k != "openai_config" and model[k] is not None]
    if others:
        raise RuleViolation(f"{label}: {others[0]} does not go with provider 'openai'; configure openai_config.")
    _validate_openai_config(model.get("openai_config"), label)
