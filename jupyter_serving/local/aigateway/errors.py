"""The AI Gateway's refusals: an answer the gateway gives instead of the model's.

`AiGatewayError(status, error_code, message)` is a `local.answers.GatewayError` (same signature), so
whatever catches the gateway's errors catches these; it adds `body()` (the JSON to answer) and
`headers` (e.g. `Retry-After` on a 429), which the front answers with when present.

Most answers are Databricks' error shape, `{"error_code", "message", "details"}`. A guardrail that
blocks a query answers what Databricks answers (HTTP 400, `finishReason` `input_guardrail_triggered`
and the `input_guardrail` verdicts), with `error_code`, `message` and `details` beside them so that
clients reading Databricks errors still find a readable message.
"""
from __future__ import annotations

import json

from jupyter_serving.local.answers import GatewayError


class AiGatewayError(GatewayError):
    """An answer in place of the model's: `status`, `body()` (JSON) and `headers`."""

    def __init__(self, status: int, error_code: str, message: str, *, extra: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status, error_code, message)
        self.details: list = []
        self.extra = extra or {}
        self.headers = headers or None

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message, "details": self.details, **self.extra}

    def payload(self) -> bytes:
        return json.dumps(self.body()).encode()


__all__ = ["AiGatewayError"]
