"""Browser-test support: a real `jupyter lab` server and Chromium driven by Playwright.

Registered as a plugin at the end of tests/conftest.py (`pytest_plugins = ["tests.browser_support"]`),
so every test module can request these fixtures:

- `lab_server` (module scope): `jupyter lab` on a free port with a token, private
  JUPYTER_CONFIG_DIR / JUPYTER_DATA_DIR / JUPYTER_RUNTIME_DIR / IPYTHONDIR / workspaces, `--allow-root`,
  its root dir a fresh notebook folder. It inherits os.environ after `local_backend` exported the
  backend's variables, so the lab server, its kernels and the jupyter-serving server extension all
  talk to the session's local backend. Polled until it answers; stopped by PID at teardown. Its log
  goes to test-artifacts/lab-<module>.log.
- `browser` (module scope): Debian's Chromium (/usr/bin/chromium, or $JUPYTER_SERVING_CHROMIUM)
  launched by Playwright for Python. Playwright never downloads a browser here.
- `browser_page` (function scope): a fresh context and page (1400x900). A failing test leaves a
  screenshot at test-artifacts/<test>-failure.png.

Helpers: `open_lab(page, lab_server, path=None)`, `write_notebook(lab_server, name, cells)`,
`active_notebook(page)`, `wait_kernel_idle(page)`, `run_in_new_cell(page, source)`, `screenshot(page, name)`.

Playwright's sync API cannot run inside a running asyncio loop: use these fixtures from plain (sync)
test functions.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

CHROMIUM = os.environ.get("JUPYTER_SERVING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}

#: The notebook panel the user sees (JupyterLab keeps hidden ones in the DOM).
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"

__all__ = [
    "ARTIFACTS",
    "LabServer",
    "NOTEBOOK",
    "active_notebook",
    "browser",
    "browser_page",
    "lab_server",
    "open_lab",
    "run_in_new_cell",
    "screenshot",
    "wait_kernel_idle",
    "write_notebook",
]


# --------------------------------------------------------------------------------------------------
# jupyter lab


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT/ (base URL, ends with /)
    token: str
    root_dir: Path
    pid: int
    log_path: Path

    def lab_url(self, path: str | None = None, reset: bool = True) -> str:
        """URL of JupyterLab (opening `path`, relative to the root dir, if given) with the token."""
        target = f"{self.url}lab" + (f"/tree/{path}" if path else "")
        query = ("reset&" if reset else "") + f"token={self.token}"
        return f"{target}?{query}"

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, object]:
        """Call the server's REST API with the token (returns status and decoded JSON)."""
        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT") else None)
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw.decode(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _quiet_lab_settings(settings_dir: Path) -> None:
    """No news/update checks (no internet here) and no toast covering the screenshots."""
    path = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _link_source_labextension(data_dir: Path) -> None:
    """Serve the labextension built in the source tree (jupyter_serving/labextension) when there is
    one, ahead of the copy `pip install` put in share/jupyter/labextensions: after a rebuild the tests
    see the new code without reinstalling. The user data dir comes first in the lookup path."""
    import jupyter_serving

    built = Path(jupyter_serving.__file__).resolve().parent / "labextension"
    if (built / "package.json").is_file():
        target = data_dir / "labextensions" / "jupyter-serving"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(built, target_is_directory=True)


def start_lab_server(base: Path, log_path: Path, timeout: float = 90.0) -> tuple[LabServer, subprocess.Popen]:
    port = _free_port()
    token = secrets.token_hex(16)
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "workspaces",
                                           "settings", "notebooks")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    _quiet_lab_settings(dirs["settings"])
    _link_source_labextension(dirs["data"])
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={dirs['notebooks']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=dirs["notebooks"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {proc.returncode}; see {log_path}")
        if _answers(url, token):
            return LabServer(url, token, dirs["notebooks"], proc.pid, log_path), proc
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s; see {log_path}")


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a server we started: SIGTERM (it shuts its kernels down), then SIGKILL its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created (start_new_session)
            except ProcessLookupError:
                pass
            proc.wait(10)


@pytest.fixture(scope="module")
def lab_server(request, local_backend, tmp_path_factory):
    """A real `jupyter lab` for this test module, wired to the session's local backend."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    base = tmp_path_factory.mktemp(f"lab-{module}")
    server, proc = start_lab_server(base, ARTIFACTS / f"lab-{module}.log")
    yield server
    stop_process(proc)


# --------------------------------------------------------------------------------------------------
# Chromium through Playwright


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium` "
                    "(or set JUPYTER_SERVING_CHROMIUM). Never `playwright install`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def browser_page(request, browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}") if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: messages.append(f"pageerror: {err}"))
    page.console_messages = messages  # type: ignore[attr-defined]
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        try:
            screenshot(page, f"{request.node.name}-failure")
            (ARTIFACTS / f"{request.node.name}-console.log").write_text("\n".join(messages))
        except Exception:  # noqa: BLE001 - best effort
            pass
    context.close()


# --------------------------------------------------------------------------------------------------
# Helpers


def screenshot(page, name: str, **kwargs) -> Path:
    """Save a PNG under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path


def write_notebook(lab_server: LabServer, name: str, cells: list[str] | None = None) -> str:
    """Write a Python 3 notebook with these code cells into the server's root dir; returns its path."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (cells or [""])]
    path = lab_server.root_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return name


def open_lab(page, lab_server: LabServer, path: str | None = None, timeout: float = 60_000) -> None:
    """Open JupyterLab (a fresh workspace), optionally a notebook; wait until the shell is up."""
    page.goto(lab_server.lab_url(path), timeout=timeout)
    page.wait_for_selector("#jp-main-dock-panel", timeout=timeout)
    if path and path.endswith(".ipynb"):
        page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=timeout)


def active_notebook(page):
    return page.locator(NOTEBOOK)


def wait_kernel_idle(page, timeout: float = 60_000) -> None:
    """Wait for the status bar to read `Python 3 (ipykernel) | Idle` (a kernel attached and idle)."""
    page.locator(".jp-StatusBar-Widget", has_text="Python 3 (ipykernel) | Idle").first.wait_for(timeout=timeout)


def run_in_new_cell(page, source: str) -> None:
    """Append a code cell to the active notebook with `source` and run it (Shift+Enter)."""
    nb = active_notebook(page)
    nb.locator(".jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    editor = nb.locator(".jp-Cell").last.locator(".cm-content")
    editor.click()
    page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")
