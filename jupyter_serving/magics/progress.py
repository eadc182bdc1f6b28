"""Live progress while a command waits for a deployment: updated in place in a kernel, lines elsewhere."""
from __future__ import annotations

import time
from typing import Any


def in_kernel(shell: Any) -> bool:
    """Whether `shell` runs in a Jupyter kernel (where displays can be updated in place)."""
    return getattr(shell, "kernel", None) is not None


class Progress:
    """An `on_progress(status, elapsed)` callback for `ServingClient` waits."""

    def __init__(self, shell: Any, verb: str):
        self.shell = shell
        self.verb = verb
        self.handle = None
        self.last_text = ""
        self.last_time = 0.0

    def __call__(self, status, elapsed: float) -> None:
        text = f"{self.verb} {status.progress_line(elapsed)}"
        state_part = text.rsplit(" · ", 1)[0]
        now = time.monotonic()
        if in_kernel(self.shell):
            from IPython.display import display

            if self.handle is None:
                self.handle = display({"text/plain": text}, raw=True, display_id=True)
            elif text != self.last_text:
                self.handle.update({"text/plain": text}, raw=True)
        elif state_part != self.last_text.rsplit(" · ", 1)[0] or now - self.last_time >= 5.0:
            print(text, flush=True)
            self.last_time = now
        self.last_text = text
