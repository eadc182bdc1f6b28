"""What the gateway answers: Databricks-shaped errors, and the checks on a query body before any parser.

A model's error answers come back in Databricks' shape (`error_code`, a one-line `message`,
`details`); the Python stack trace MLflow attaches goes to the served entity's server log only.
"""
from __future__ import annotations

import json
import re

import numpy as np

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 128  # deeper JSON is refused before any parser (ours or MLflow's) recurses into it
TOO_LARGE = "The request payload exceeds the 16 MB limit; send fewer rows per request."
TOO_DEEP = f"The request body nests JSON arrays or objects deeper than {MAX_JSON_DEPTH} levels."
_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
          409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE",
          504: "DEADLINE_EXCEEDED"}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)

class GatewayError(Exception):
    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def _max_depth(body: bytes) -> int:
    steps = np.frombuffer(body.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max()) if steps.size else 0


def json_too_deep(body: bytes) -> bool:
    """Whether a JSON body nests deeper than MAX_JSON_DEPTH, found without parsing (nor recursing)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    # Brackets inside strings count too at first; only when that is too deep are strings taken out.
    return _max_depth(body) > MAX_JSON_DEPTH and _max_depth(_JSON_STRING.sub(b"", body)) > MAX_JSON_DEPTH


def _exception_of(trace: str) -> str:
    """`Type: message` of a Python traceback (the lines after its last indented frame line)."""
    lines = trace.rstrip().splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith(" ")), default=-1)
    return " ".join(lines[last_frame + 1:]) or lines[-1]


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_answer(status: int, payload: bytes, content_type: str) -> tuple[bytes, str | None]:
    """A model server's error answer in Databricks' shape, and the stack trace it carried (if any)."""
    doc = None
    if "json" in content_type:
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            pass
    code = _CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    trace = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        code = str(doc.get("error_code") or code)
        message, trace = doc["message"], doc.get("stack_trace")
        if isinstance(trace, str) and trace.strip():
            message = f"{message.rstrip()} Error: {_exception_of(trace)}"
    elif status < 500 and payload and content_type.startswith("text/"):
        message = payload.decode(errors="replace")
    else:
        message = f"The model server failed to answer the query (HTTP {status}); see the served entity's logs."
    body = {"error_code": code, "message": _one_line(message), "details": []}
    return json.dumps(body).encode(), trace if isinstance(trace, str) else None
