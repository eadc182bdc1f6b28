"""The default client: the one the magics, the widgets and the lab panel share."""
from __future__ import annotations

import threading

from jupyter_serving.client.base import DEFAULT_QUERY_TIMEOUT
from jupyter_serving.client.service import ServingClient

_default_client: ServingClient | None = None
_default_lock = threading.Lock()


def connect(
    *,
    profile: str | None = None,
    host: str | None = None,
    local: bool = False,
    data_dir: str | None = None,
    token: str | None = None,
    retry_timeout_seconds: int = 60,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> ServingClient:
    """Open a client and make it the default one. With no arguments: a configured Databricks
    workspace if there is one, else the local backend (started on demand)."""
    global _default_client
    client = ServingClient.connect(profile=profile, host=host, local=local, data_dir=data_dir, token=token,
                                   retry_timeout_seconds=retry_timeout_seconds, query_timeout=query_timeout)
    with _default_lock:
        _default_client = client
    return client


def get_client() -> ServingClient:
    """The default client, connected on first use (see `connect`)."""
    global _default_client
    with _default_lock:
        client = _default_client
    if client is not None:
        return client
    client = ServingClient.connect()
    with _default_lock:
        if _default_client is None:
            _default_client = client
        return _default_client


def current_client() -> ServingClient | None:
    """The default client if one is connected; never connects (for completion and status lines)."""
    return _default_client


def set_client(client: ServingClient | None) -> None:
    global _default_client
    with _default_lock:
        _default_client = client


def disconnect() -> None:
    set_client(None)
