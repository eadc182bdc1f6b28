"""Where load goes and what is sent: URL checks, invocation URLs, payload encoding, request bytes.

Load is only ever sent to this machine (loopback over plain http) or to a real workspace over
https. Anything else is refused before a socket is opened: a load generator pointed at the wrong
plain-http address is a denial-of-service tool.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

USER_AGENT = "jupyter-serving-bench/0.1"


class TargetNotAllowed(ValueError):
    """The URL is neither a loopback http URL nor an https URL."""


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_name(host: str) -> bool:
    # RFC 6761: "localhost" and names under ".localhost" are loopback; they are still resolved
    # and checked before connecting (see `resolve`), in case /etc/hosts says otherwise.
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


@dataclass(frozen=True)
class Target:
    """One HTTP POST target with its pre-serialized request."""

    scheme: str
    host: str
    port: int
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_url(cls, url: str, body: bytes, headers: dict[str, str] | None = None) -> Target:
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        host = parts.hostname or ""
        if scheme not in ("http", "https") or not host:
            raise TargetNotAllowed(f"'{url}' is not an http(s) URL with a host.")
        if scheme == "http" and not (_is_loopback_literal(host) or _is_loopback_name(host)):
            raise TargetNotAllowed(
                f"Refusing to send load to '{url}': plain http is only allowed to this machine "
                "(localhost, 127.0.0.1, ::1). Use the workspace's https URL for a real endpoint."
            )
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise TargetNotAllowed(f"'{url}' has an invalid port: {exc}") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(scheme, host, port, path, bytes(body), tuple((headers or {}).items()))

    @property
    def is_tls(self) -> bool:
        return self.scheme == "https"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def request_bytes(self) -> bytes:
        """The whole HTTP/1.1 request, built once and written as-is for every request."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.is_tls else 80
        host_header = host if self.port == default_port else f"{host}:{self.port}"
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {host_header}",
            f"User-Agent: {USER_AGENT}",
            "Content-Type: application/json",
            "Accept: application/json",
            f"Content-Length: {len(self.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


async def resolve(loop, target: Target) -> tuple[str, int]:
    """The address to connect to. For plain http every resolved address must be loopback."""
    infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {target.host}")
    addresses = [info[4][0] for info in infos]
    if not target.is_tls:
        outside = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
        if outside:
            raise TargetNotAllowed(
                f"Refusing to send load to {target.host}: it resolves to {', '.join(outside)}, "
                "which is not this machine; plain http is only allowed to loopback."
            )
    return addresses[0], target.port


def invocation_url(host: str, endpoint: str, entity: str | None = None) -> str:
    """Databricks' scoring URL for an endpoint, or for one served entity of it."""
    base = host.rstrip("/")
    url = f"{base}/serving-endpoints/{quote(endpoint, safe='')}"
    if entity:
        url += f"/served-models/{quote(entity, safe='')}"
    return url + "/invocations"


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def encode_payload(payload: Any) -> bytes:
    """JSON body for a scoring request: a DataFrame becomes {"dataframe_split": ...} (without its
    index, as MLflow expects), a dict or list is dumped as given, str/bytes are sent verbatim."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, (dict, list)):
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")
    if hasattr(payload, "to_json") and hasattr(payload, "columns"):
        # pandas' own JSON writer handles numpy types, NaN and timestamps that json.dumps cannot.
        split = payload.to_json(orient="split", index=False, date_format="iso")
        return b'{"dataframe_split":' + split.encode("utf-8") + b"}"
    raise TypeError(
        "payload must be a pandas DataFrame, a dict/list JSON body, or bytes/str; "
        f"got {type(payload).__name__}"
    )
