"""Waiting for an endpoint to settle, and saying why a deployment failed (the entity that broke and
the last error line of its build logs)."""
from __future__ import annotations

import re
import time
from collections.abc import Callable

from jupyter_serving.client.base import DEFAULT_WAIT_TIMEOUT, ClientBase, ProgressCallback, wait_hint
from jupyter_serving.core.errors import DeploymentFailedError, Hint, ServingTimeoutError
from jupyter_serving.core.status import EndpointStatus

_ERROR_LINE = re.compile(r"^\s*[\w.]*(Error|Exception)\b")


class WaitingMixin(ClientBase):
    def wait(
        self,
        name: str,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        until: Callable[[EndpointStatus], bool] | None = None,
        raise_on_failure: bool = True,
    ) -> EndpointStatus:
        """Poll until the endpoint settles (no update in progress), or `until(status)` holds.

        `on_progress(status, elapsed_seconds)` runs after every poll. KeyboardInterrupt stops
        waiting and propagates; the deployment itself goes on.
        """
        start = time.monotonic()
        interval = 0.25
        deploying: list[str] = []  # entities of the pending config: a failed update drops it
        while True:
            status = self.get(name)  # type: ignore[attr-defined]
            deploying = [e.get("name") for e in status.pending_entities] or deploying
            elapsed = time.monotonic() - start
            if on_progress is not None:
                on_progress(status, elapsed)
            done = until(status) if until is not None else status.is_settled
            if done or (until is not None and status.update_failed and status.is_settled):
                if raise_on_failure and status.update_failed:
                    raise self._failed(status, deploying)
                return status
            if elapsed >= timeout:
                raise ServingTimeoutError(f"Endpoint '{name}' is still '{status.state}' after {timeout:.0f} s",
                                          wait_hint("The deployment goes on; follow it with {how}.", name))
            time.sleep(min(interval, max(0.05, timeout - elapsed)))
            interval = min(interval * 2, self.poll_max_interval)

    def _failed_entity(self, status: EndpointStatus, deploying: list[str]) -> tuple[str, str | None]:
        """(the entity whose deployment failed, the error line of its build logs or None)."""
        failed = status.failed_entity()
        if failed:
            return failed, None
        # A failed update's entities are gone from the endpoint; their build logs say what broke.
        for candidate in [n for n in deploying if n not in status.entity_names] or deploying:
            reason = self._build_log_error(status.name, candidate)
            if reason:
                return candidate, reason
        return (status.entity_names[0] if status.entity_names else "ENTITY"), None

    def _failed(self, status: EndpointStatus, deploying: list[str] | None = None) -> DeploymentFailedError:
        entity, reason = self._failed_entity(status, deploying or [])
        reason = f"served entity '{entity}': {reason}" if reason else status.failure_reason().rstrip(". ")
        keeps = " The previous config keeps serving." if status.ready == "READY" else ""
        return DeploymentFailedError(
            f"Endpoint '{status.name}' {status.config_update.lower().replace('_', ' ')}: {reason}.{keeps}",
            Hint(python=f"See `client.build_logs('{status.name}', '{entity}')`, fix the model, then update the "
                        "endpoint.",
                 magic=f"See `%serve logs {status.name} {entity} --build`, fix the model, then update the endpoint."),
            error_code=status.config_update)

    def _build_log_error(self, name: str, entity: str) -> str | None:
        """The last exception line of an entity's build logs, or None."""
        try:
            text = self.workspace.serving_endpoints.build_logs(name=name, served_model_name=entity).logs or ""
        except Exception:  # noqa: BLE001 - only a better message is at stake
            return None
        errors = [ln.strip() for ln in text.splitlines() if _ERROR_LINE.match(ln)]
        return errors[-1][:300] if errors else None
