"""External models: served entities whose model runs at a provider's OpenAI-compatible API.

An external entity has no model process. `ExternalServer` stands where a `supervisor.ModelServer`
stands (the same attributes and methods the deployer, engine, monitor and gateway use): `spawn` only
marks it up, `wait_ready` resolves its API key from the local secret store and is done, and `running`
stays true until `stop`, so the monitor never restarts it. Its `upstream` is an `ExternalUpstream`,
with `UpstreamPool`'s interface: the gateway's `POST /invocations` (and `POST /stream` for
`stream: true`) go to `{openai_api_base}/chat/completions`, `/completions` or `/embeddings` (by the
entity's task) with `"model": external_model.name` set in the body and `Authorization: Bearer <key>`;
the provider's answer comes back unchanged (OpenAI's shapes are what Databricks' external-model
endpoints answer), errors with their status.

Keys: `openai_api_key` is a `{{secrets/scope/key}}` reference, resolved when the entity is brought up
(as Databricks does: after changing the secret, stop and start the endpoint, or update its config).
An `openai_api_key_plaintext` is moved into the secret store when the config is submitted
(`seal_plaintext_keys`): the endpoint document keeps only the sealed key's name (`_plaintext_key`,
never shown by the API). A key is never logged, never in a build log, an error or an answer.
"""
from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from jupyter_serving.core.rules import (
    EXTERNAL_MODEL_CONCURRENCY,
    RESOURCE_DOES_NOT_EXIST,
    RuleViolation,
    is_external,
    secret_reference,
)
from jupyter_serving.local.permissions import PERMISSION_DENIED
from jupyter_serving.local.secret_store import SecretStore
from jupyter_serving.local.supervisor import ModelServerFailed
from jupyter_serving.local.upstream import UpstreamClosed

log = logging.getLogger("jupyter_serving.local")
# httpx logs every request at INFO; the backend's log keeps its own lines (and never a header).
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_API_BASE = "https://api.openai.com/v1"
SEALED = "_plaintext_key"  # in a stored openai_config: the name of its sealed plaintext key
TASK_PATHS = {"llm/v1/chat": "/chat/completions", "llm/v1/completions": "/completions",
              "llm/v1/embeddings": "/embeddings"}
CONNECT_TIMEOUT_S = 10.0
_JSON = b"application/json"
_closing: set[asyncio.Task] = set()


def api_base(external_model: dict) -> str:
    config = external_model.get("openai_config") or {}
    return (config.get("openai_api_base") or DEFAULT_API_BASE).strip().rstrip("/")


def describe(external_model: dict) -> str:
    """`openai:gpt-4o-mini via https://host/v1` (what build logs say; never the key)."""
    return f"{external_model.get('provider')}:{external_model.get('name')} via {api_base(external_model)}"


def key_source(external_model: dict) -> str:
    """Where the API key comes from, for the build log (never the key)."""
    config = external_model.get("openai_config") or {}
    if config.get(SEALED):
        return "given as openai_api_key_plaintext (kept in the local secret store)"
    reference = secret_reference(config.get("openai_api_key"))
    return f"secret '{reference[1]}' of scope '{reference[0]}'" if reference else "none"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, code: str, message: str) -> tuple[int, bytes, bytes]:
    return status, json.dumps({"error_code": code, "message": message, "details": []}).encode(), _JSON


class _Pieces:
    """The body of a streamed answer, piece by piece as it arrives; `aclose` ends (and aborts) it."""

    def __init__(self, response: httpx.Response | None, first: bytes = b"", base: str = ""):
        self._response = response
        self._chunks = response.aiter_raw() if response is not None else None
        self._first = first
        self._base = base
        self._closed = False

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        try:
            while self._chunks is not None and not self._closed:
                chunk = await self._chunks.__anext__()
                if chunk:
                    return chunk
        except StopAsyncIteration:
            pass
        except httpx.TimeoutException:
            await self.aclose()
            raise TimeoutError("The external model's provider stopped sending its answer.") from None
        except httpx.HTTPError as exc:
            await self.aclose()
            raise UpstreamClosed(f"The external model's provider at {self._base} broke off its answer "
                                 f"({type(exc).__name__}).", answered=True) from None
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Close the answer; one not read to its end closes its connection, which aborts the request."""
        if not self._closed:
            self._closed = True
            if self._response is not None:
                await self._response.aclose()


class ExternalUpstream:
    """The gateway's client to one external model's provider (`UpstreamPool`'s interface)."""

    def __init__(self, external_model: dict, api_key: str, closed: bool = False):
        config = external_model.get("openai_config") or {}
        self.base = api_base(external_model)
        self.url = self.base + TASK_PATHS.get(external_model.get("task"), "/chat/completions")
        self.model = external_model.get("name")
        self.closed = closed
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                         "Accept": "application/json, text/event-stream"}
        if config.get("openai_organization"):
            self._headers["OpenAI-Organization"] = config["openai_organization"]
        self._key = api_key.encode() if len(api_key) >= 6 else b""
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the headers
        return f"ExternalUpstream({self.url!r}, model={self.model!r}, closed={self.closed})"

    def _http(self) -> httpx.AsyncClient:
        if self.closed:
            raise UpstreamClosed("The external model's connection is closed.")
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=not _is_loopback(self.base), follow_redirects=False,
                limits=httpx.Limits(max_connections=EXTERNAL_MODEL_CONCURRENCY, max_keepalive_connections=32))
        return self._client

    def _local(self, method: str, target: str) -> tuple[int, bytes, bytes] | None:
        """The answer to what is not a query (readiness, unknown routes); None for a query."""
        if method == "GET" and target == "/ping":
            return 200, b'{"status": "ok"}', _JSON
        if method != "POST" or target not in ("/invocations", "/stream"):
            return _error(404, "ENDPOINT_NOT_FOUND", f"An external model does not serve {method} {target}.")
        return None

    def _payload(self, body: bytes, stream: bool) -> bytes | tuple[int, bytes, bytes]:
        """The provider's request body: the query with `model` set (`extra_params` merged, as Databricks
        passes them on), or an error answer for a body that is not a JSON object."""
        try:
            query = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return _error(400, "BAD_REQUEST", "The request body is not valid JSON.")
        if not isinstance(query, dict):
            return _error(400, "BAD_REQUEST", "The request body must be a JSON object.")
        extra = query.pop("extra_params", None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                query.setdefault(key, value)
        query["model"] = self.model
        if stream:
            query["stream"] = True
        return json.dumps(query).encode()

    def _scrub(self, payload: bytes) -> bytes:
        return payload.replace(self._key, b"***") if self._key and self._key in payload else payload

    def _unreachable(self, exc: Exception) -> UpstreamClosed:
        reason = str(exc)[:200] or type(exc).__name__
        return UpstreamClosed(f"Cannot reach the external model's provider at {self.base}: {reason}",
                              answered=isinstance(exc, (httpx.ReadError, httpx.RemoteProtocolError)))

    async def _send(self, body: bytes, timeout: float, stream: bool) -> httpx.Response:
        client = self._http()
        request = client.build_request("POST", self.url, content=body, headers=self._headers,
                                       timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)))
        try:
            return await asyncio.wait_for(client.send(request, stream=stream), timeout)
        except (asyncio.TimeoutError, TimeoutError, httpx.TimeoutException):
            raise TimeoutError(f"The external model's provider did not answer within {timeout:g} s.") from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        except RuntimeError as exc:  # the client was closed under this request
            raise UpstreamClosed(f"The external model's connection closed ({exc}).") from None

    async def request(self, method: str, target: str, body: bytes = b"", content_type: str | None = None,
                      timeout: float = 300.0) -> tuple[int, bytes, bytes]:
        """(status, body, content type) of one query. Raises UpstreamClosed, TimeoutError."""
        local = self._local(method, target)
        if local is not None:
            return local
        payload = self._payload(body, stream=target == "/stream")
        if isinstance(payload, tuple):
            return payload
        response = await self._send(payload, timeout, stream=False)
        answer = response.content if response.status_code < 400 else self._scrub(response.content)
        return response.status_code, answer, response.headers.get("content-type", "").encode("latin-1")

    async def request_stream(self, method: str, target: str, body: bytes, content_type: str | None,
                             timeout: float) -> tuple[int, bytes, AsyncIterator[bytes]]:
        """(status, content type, body pieces), returned once the answer's head arrived; `timeout` bounds
        the wait for the head and for each piece. Close the pieces (`aclose`): early, that aborts the request."""
        local = self._local(method, target)
        payload = self._payload(body, stream=True) if local is None else local
        if isinstance(payload, tuple):
            status, answer, answer_type = payload
            return status, answer_type, _Pieces(None, answer)
        response = await self._send(payload, timeout, stream=True)
        answer_type = response.headers.get("content-type", "").encode("latin-1")
        if response.status_code >= 400:  # an error answer is short: read it, so the key can be scrubbed
            try:
                error = self._scrub(await response.aread())
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            finally:
                await response.aclose()
            return response.status_code, answer_type, _Pieces(None, error)
        return response.status_code, answer_type, _Pieces(response, base=self.base)

    def close(self) -> None:
        """Close the connections; queries in flight fail with UpstreamClosed."""
        self.closed = True
        client, self._client = self._client, None
        if client is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(client.aclose())
        except RuntimeError:  # no loop (shutdown): nothing is in flight
            return
        _closing.add(task)
        task.add_done_callback(_closing.discard)


class ExternalServer:
    """An external entity's stand-in for a model server: no process, ready once its key is resolved."""

    def __init__(self, external_model: dict, log_path: Path, resolve_key: Callable[[], str]):
        self.external_model = copy.deepcopy(external_model)
        self.model_uri = f"external:{external_model.get('provider')}:{external_model.get('name')}"
        self.log_path = log_path
        self.threads = 0
        self.env: dict[str, str] = {}
        self.proc = None
        self.port: int | None = None
        self.socket_path: Path | None = None
        self.expected_exit = False
        self._resolve_key = resolve_key
        self._upstream: ExternalUpstream | None = None
        self._up = False

    @property
    def pid(self) -> int | None:
        return None

    @property
    def upstream(self) -> ExternalUpstream:
        if self._upstream is None:  # not up: every query fails as a stopped model server's would
            return ExternalUpstream(self.external_model, "", closed=True)
        return self._upstream

    def running(self) -> bool:
        return self._up

    def _log(self, line: str) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError:
            pass

    def spawn(self) -> None:
        self._up, self.expected_exit = True, False
        self._log(f"external model {describe(self.external_model)}")

    async def wait_ready(self, timeout: float) -> float:
        """Resolve the API key; returns seconds taken. Raises ModelServerFailed (the message names the
        secret, never its value)."""
        started = time.monotonic()
        if not self._up:
            raise ModelServerFailed("The external model was stopped.")
        try:
            key = await asyncio.wait_for(asyncio.to_thread(self._resolve_key), timeout)
        except RuleViolation as exc:
            self._up = False
            raise ModelServerFailed(exc.message) from None
        if self._upstream is not None:
            self._upstream.close()
        self._upstream = ExternalUpstream(self.external_model, key)
        return time.monotonic() - started

    async def stop(self, grace: float = 10.0) -> None:
        if self._up:
            self._log("external model stopped")
        self._up, self.expected_exit = False, True
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.close()


def resolve_api_key(store: SecretStore, external_model: dict) -> str:
    """The API key of an external model, from the secret store (blocking: call in a thread)."""
    config = external_model.get("openai_config") or {}
    if config.get(SEALED):
        value = store.sealed(config[SEALED])
        where = "the plaintext API key"
        if value is None:
            raise RuleViolation("The plaintext API key of this external model is gone from the local secret "
                                "store; give it again with a config update.", RESOURCE_DOES_NOT_EXIST)
    else:
        reference = secret_reference(config.get("openai_api_key"))
        if reference is None:
            raise RuleViolation("The external model has no API key: set openai_api_key or openai_api_key_plaintext.")
        scope, key = reference
        where = f"secret '{key}' of scope '{scope}'"
        value = store.value(scope, key)
        if value is None:
            raise RuleViolation(f"Secret '{key}' does not exist in scope '{scope}' (openai_api_key); put it with "
                                f"`jupyter-serving local secrets put {scope} {key}`.", RESOURCE_DOES_NOT_EXIST)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleViolation(f"The API key in {where} is not UTF-8 text.") from None
    if any(c in text for c in "\r\n\x00"):
        raise RuleViolation(f"The API key in {where} contains a line break or NUL; store it without them.")
    return text


def check_key_references(store: SecretStore, config: dict, is_admin: bool) -> None:
    """Every `{{secrets/scope/key}}` an external entity of `config` references exists and may be read by
    the endpoint's creator (blocking: call in a thread)."""
    for entity in config["served_entities"]:
        reference = secret_reference(((entity.get("external_model") or {}).get("openai_config") or {})
                                     .get("openai_api_key"))
        if not is_external(entity) or reference is None:
            continue
        scope, key = reference
        label = f"served entity '{entity['name']}'"
        if not store.readable(scope, is_admin):
            raise RuleViolation(f"The openai_api_key of {label} references scope '{scope}', which only the local "
                                "admin may read (scopes everyone reads are created with "
                                "initial_manage_principal 'users').", PERMISSION_DENIED)
        if not store.exists(scope, key):
            raise RuleViolation(f"Secret '{key}' does not exist in scope '{scope}' (openai_api_key of {label}); "
                                f"put it first: `jupyter-serving local secrets put {scope} {key}`.",
                                RESOURCE_DOES_NOT_EXIST)


def seal_plaintext_keys(store: SecretStore, endpoint_id: str, config: dict) -> None:
    """Move each `openai_api_key_plaintext` of `config` into the secret store (in place; blocking)."""
    for entity in config["served_entities"]:
        openai_config = (entity.get("external_model") or {}).get("openai_config")
        if not isinstance(openai_config, dict):
            continue
        openai_config.pop(SEALED, None)  # only ever set here
        plaintext = openai_config.pop("openai_api_key_plaintext", None)
        if plaintext:
            name = f"{endpoint_id}.{entity['name']}.{secrets.token_hex(6)}"
            store.seal(name, endpoint_id, plaintext.encode("utf-8", "surrogatepass"))
            openai_config[SEALED] = name


def take_keys(store: SecretStore, endpoint_id: str, config: dict, is_admin: bool) -> None:
    """A submitted config's keys: its secret references checked, its plaintext keys sealed (blocking)."""
    if any(is_external(e) for e in config["served_entities"]):
        check_key_references(store, config, is_admin)
        seal_plaintext_keys(store, endpoint_id, config)


def prune_keys(store: SecretStore, endpoint_id: str, *configs: dict | None) -> None:
    """Delete the endpoint's sealed keys that none of `configs` uses (all of them, given none); blocking."""
    try:
        store.prune_sealed(endpoint_id, sealed_names(*configs))
    except RuleViolation as exc:  # left for the next prune; the keys stay private meanwhile
        log.warning("endpoint id %s: could not delete unused sealed API keys: %s", endpoint_id, exc.message)


def sealed_names(*configs: dict | None) -> set[str]:
    """The sealed keys the given configs use."""
    return {((e.get("external_model") or {}).get("openai_config") or {}).get(SEALED)
            for config in configs if config for e in config.get("served_entities") or []} - {None}


def redact(external_model: dict) -> dict:
    """An external model as the API shows it: no plaintext key, no sealed key's name."""
    shown = copy.deepcopy(external_model)
    for key, value in shown.items():
        if key.endswith("_config") and isinstance(value, dict):
            shown[key] = {k: v for k, v in value.items() if not k.startswith("_") and not k.endswith("_plaintext")}
    return shown
