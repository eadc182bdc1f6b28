"""The magics in a real Jupyter kernel (ipykernel over ZMQ): what a notebook, nbval and papermill see.

- an expected error is one stderr line and no iopub `error` message (the default);
- with `ServeMagics.raise_errors` it is an iopub `error` (so nbval/papermill fail the cell), still
  one line long;
- waiting shows progress that is updated in place (`update_display_data`).
"""
from __future__ import annotations

import os
import queue

import pytest

from tests.conftest import unique


@pytest.fixture(scope="module")
def kernel(local_backend, iris_models):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ), cwd=os.getcwd())
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc, code: str, timeout: float = 120.0) -> tuple[dict, list[dict]]:
    """Run `code`; return the execute_reply content and the iopub messages of this execution."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no iopub message within {timeout} s for {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    while True:  # skip replies to earlier requests (e.g. the kernel_info of start-up)
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], messages


def streams(messages, name: str) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == name)


def test_kernel_load_errors_and_progress(kernel, local_backend, iris_models):
    reply, msgs = execute(kernel, "%load_ext jupyter_serving")
    assert reply["status"] == "ok"
    assert streams(msgs, "stdout").startswith(
        f"jupyter-serving 0.1.0: %serve and %%query will use the local backend at {local_backend.url}")

    # default: one stderr line, no iopub error (IPython's UsageError)
    reply, msgs = execute(kernel, "%serve status no-such-endpoint")
    assert [m for m in msgs if m["msg_type"] == "error"] == []
    err = streams(msgs, "stderr")
    assert err.startswith("UsageError: No serving endpoint named 'no-such-endpoint'") and err.count("\n") == 1

    # raise_errors: a real iopub error, so that nbval/papermill fail the cell; still one line
    execute(kernel, "%config ServeMagics.raise_errors = True")
    reply, msgs = execute(kernel, "%serve status no-such-endpoint")
    assert reply["status"] == "error" and reply["ename"] == "NotFoundError"
    errors = [m for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["content"]["traceback"] == [
        "NotFoundError: No serving endpoint named 'no-such-endpoint'. List the endpoints with `%serve list` "
        "(names are case-sensitive)."]
    execute(kernel, "%config ServeMagics.raise_errors = False")

    # progress while waiting, updated in place, then the rich summary
    name = unique("kern")
    reply, msgs = execute(kernel, f"%serve create {name} --model {iris_models['name']} --version 1", timeout=180)
    try:
        assert reply["status"] == "ok"
        kinds = [m["msg_type"] for m in msgs]
        assert "display_data" in kinds and "update_display_data" in kinds
        first = next(m for m in msgs if m["msg_type"] == "display_data")
        assert first["content"]["data"]["text/plain"].startswith(f"Creating {name}: Not ready (Updating)")
        display_id = first["content"]["transient"]["display_id"]
        updates = [m for m in msgs if m["msg_type"] == "update_display_data"]
        assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
        assert f"{name}: Ready" in updates[-1]["content"]["data"]["text/plain"]
        result = next(m for m in msgs if m["msg_type"] == "execute_result")
        assert "text/html" in result["content"]["data"]
        assert f"Endpoint {name}: Ready" in result["content"]["data"]["text/plain"]
    finally:
        execute(kernel, f"%serve delete {name} --yes")
