"""`ServingClient`: model serving through databricks-sdk, composed of focused parts.

    endpoints.EndpointsMixin   get, exists, list, names, list_raw, stop, start, delete, cancel_update
    deploy.DeployMixin         create, update_config, set_traffic, latest_version
    genai.GenAIMixin           create_external, create_pt, update_pt, set_ai_gateway, ai_gateway, secret_scopes/keys
    entities.EntitiesMixin     add_entity, remove_entity (one-line canaries)
    waiting.WaitingMixin       wait (and why a deployment failed)
    query.QueryMixin           query
    chat.ChatMixin             chat (streamed deltas or a ChatAnswer), openai, endpoint_task, chat_stream
    records.RecordsMixin       payloads (inference table), usage, usage_summary, metrics
    admin.AdminMixin           logs, build_logs, openapi, request_template, permissions, grant, tags

Requests go through the SDK's typed methods where the SDK can express them (`sdk_compat`), and
through `WorkspaceClient.api_client.do` where it cannot.
"""
from __future__ import annotations

import threading
from typing import Any

from jupyter_serving.client.admin import AdminMixin
from jupyter_serving.client.base import DEFAULT_QUERY_TIMEOUT
from jupyter_serving.client.chat import ChatMixin
from jupyter_serving.client.connection import Opened, Target, cloud_of, open_client, resolve_target, set_user_agent
from jupyter_serving.client.entities import EntitiesMixin
from jupyter_serving.client.genai import GenAIMixin
from jupyter_serving.client.query import QueryMixin
from jupyter_serving.client.records import RecordsMixin
from jupyter_serving.client.waiting import WaitingMixin


class ServingClient(EntitiesMixin, GenAIMixin, WaitingMixin, ChatMixin, QueryMixin, RecordsMixin, AdminMixin):
    """Model serving through databricks-sdk. Build one with `ServingClient.connect(...)`,
    `jupyter_serving.api.connect(...)`, or wrap an existing `WorkspaceClient`.

    Thread-safe for concurrent calls (widgets poll from threads).
    """

    def __init__(
        self,
        workspace: Any,
        *,
        cloud: str | None = None,
        is_local: bool | None = None,
        target: Target | None = None,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ):
        set_user_agent()
        self.workspace = workspace
        self.host = (workspace.config.host or "").rstrip("/")
        self.cloud = cloud if cloud is not None else cloud_of(workspace.config)
        self.is_local = bool(is_local)
        self.target = target
        self.query_timeout = float(query_timeout)
        self.poll_max_interval = 1.0 if self.is_local else 5.0
        self._query_clients = {}
        self._lock = threading.Lock()

    @classmethod
    def from_opened(cls, opened: Opened, **kwargs) -> ServingClient:
        return cls(opened.workspace, cloud=opened.cloud, is_local=opened.is_local, target=opened.target,
                   **kwargs)

    @classmethod
    def connect(
        cls,
        *,
        profile: str | None = None,
        host: str | None = None,
        local: bool = False,
        data_dir: str | None = None,
        token: str | None = None,
        retry_timeout_seconds: int = 60,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> ServingClient:
        """Resolve the backend (explicit choice, else a configured workspace, else the local
        backend started on demand) and open a client for it."""
        target = resolve_target(profile=profile, host=host, local=local, data_dir=data_dir, token=token)
        opened = open_client(target, retry_timeout_seconds=retry_timeout_seconds)
        return cls.from_opened(opened, query_timeout=query_timeout)

    @property
    def backend(self) -> str:
        """One line naming the backend (never the token)."""
        return f"the local backend at {self.host}" if self.is_local else f"the Databricks workspace {self.host}"

    def __repr__(self) -> str:
        return f"<ServingClient {self.backend}>"
