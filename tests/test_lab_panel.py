"""The Model Serving sidebar in a real JupyterLab, driven in Chromium by Playwright, against the
session's real local backend (see tests/browser_support.py for the lab server and the browser).

Screenshots go to test-artifacts/lab-panel-*.png.
"""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.backend_helpers import Rest, entity
from tests.browser_support import ARTIFACTS, NOTEBOOK, open_lab, screenshot, wait_kernel_idle, write_notebook
from tests.conftest import unique

PANEL = "#jupyter-serving-panel"
TAB = '.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="jupyter-serving-panel"]'


@pytest.fixture(scope="module")
def rest(local_backend) -> Rest:
    return Rest(local_backend.url, local_backend.token)


@pytest.fixture(scope="module")
def created(rest, iris_models, broken_model):
    """Endpoints, created (not waited for: their model servers boot while JupyterLab starts): one to
    query (iris v1, 100%), a split one (v1 Small 80% / v2 Medium 20%), one whose model fails to load,
    and one that the stop-and-delete test may do away with (the others stay as they were made)."""
    model, (v1, v2) = iris_models["name"], iris_models["versions"]
    names = {"query": unique("lab-iris"), "stop": unique("lab-split"), "broken": unique("lab-broken"),
             "doomed": unique("lab-doomed")}
    assert rest.create(names["broken"], [entity(broken_model["name"], broken_model["version"])]).status_code == 200
    assert rest.create(names["query"], [entity(model, v1)]).status_code == 200
    assert rest.create(names["doomed"], [entity(model, v1)]).status_code == 200
    resp = rest.create(names["stop"], [entity(model, v1), entity(model, v2, workload_size="Medium")],
                       routes=[{"served_entity_name": f"iris-{v1}", "traffic_percentage": 80},
                               {"served_entity_name": f"iris-{v2}", "traffic_percentage": 20}])
    assert resp.status_code == 200, resp.text  # entity names default to <model leaf>-<version>
    yield names
    for name in names.values():
        rest.delete(name)  # the doomed one may be gone already: a 404 is fine


@pytest.fixture(scope="module")
def endpoints(created, lab_server, rest):
    """The endpoints, settled (requested after `lab_server`, so they deploy while it starts)."""
    rest.wait_ready(created["query"])
    rest.wait_ready(created["stop"])
    rest.wait_ready(created["doomed"])
    rest.wait_settled(created["broken"])
    return created


def show_panel(page):
    """Open the Model Serving sidebar (its tab in the left side bar)."""
    page.locator(TAB).click()
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    return panel


def card(page, name: str):
    return page.locator(f'{PANEL} .jp-ServingEndpoint[data-endpoint="{name}"]')


def test_panel_lists_endpoints_with_state_entities_and_traffic(browser_page, lab_server, endpoints, iris_models,
                                                               local_backend):
    page = browser_page
    open_lab(page, lab_server)
    panel = show_panel(page)
    expect(panel.locator(".jp-ServingPanel-title")).to_have_text("Model Serving")
    expect(panel.locator(".jp-ServingPanel-backend")).to_have_text(f"local backend at {local_backend.url}")

    query = card(page, endpoints["query"])
    expect(query.locator(".jp-ServingBadge")).to_have_text("Ready")
    expect(query.locator(".jp-ServingEndpoint-config")).to_have_text("config v1")
    expect(query.locator(".jp-ServingEndpoint-updated")).to_have_text(re.compile(r"just now|\d+ min ago"))
    v1, v2 = iris_models["versions"]
    rows = query.locator(".jp-ServingEntity")
    expect(rows).to_have_count(1)
    # the served entity's name first (what traffic and logs call it), the model and version after it
    expect(rows.locator(".jp-ServingEntity-name")).to_have_text(f"iris-{v1}")
    expect(rows.locator(".jp-ServingEntity-version")).to_have_text(f"iris v{v1}")
    expect(query.locator(".jp-ServingEndpoint-url")).to_have_text(
        f"{local_backend.url.rstrip('/')}/serving-endpoints/{endpoints['query']}/invocations")
    for action in ("copy-curl", "copy-python", "traffic", "logs"):
        expect(query.locator(f'[data-action="{action}"]')).to_be_enabled()
    expect(rows.locator(".jp-ServingEntity-model")).to_have_attribute(
        "title", f"main.ml.iris v{v1} (served entity iris-{v1})")
    expect(rows.locator(".jp-ServingEntity-workload")).to_have_text("Small · CPU")
    expect(rows.locator(".jp-ServingEntity-traffic")).to_have_text("100%")

    split = card(page, endpoints["stop"])
    expect(split.locator(".jp-ServingBadge")).to_have_text("Ready")
    expect(split.locator(".jp-ServingEntity-name")).to_have_text([f"iris-{v1}", f"iris-{v2}"])
    expect(split.locator(".jp-ServingEntity-version")).to_have_text([f"iris v{v1}", f"iris v{v2}"])
    expect(split.locator(".jp-ServingEntity-workload")).to_have_text(["Small · CPU", "Medium · CPU"])
    expect(split.locator(".jp-ServingEntity-traffic")).to_have_text(["80%", "20%"])
    expect(split.locator('[data-action="stop"]')).to_be_enabled()

    broken = card(page, endpoints["broken"])
    expect(broken.locator(".jp-ServingBadge")).to_have_text("Not ready (Update failed)")
    expect(broken.locator(".jp-ServingBadge")).to_have_attribute("title", "Not ready (Update failed)")
    expect(broken.locator(".jp-ServingEndpoint-message")).to_contain_text("weights are corrupt")
    screenshot(page, "lab-panel-endpoints")
    panel.screenshot(path=str(ARTIFACTS / "lab-panel-sidebar.png"))

    # Theme variables only: the dark theme needs nothing else (switched back for the next tests).
    use_theme(page, "JupyterLab Dark")
    panel.screenshot(path=str(ARTIFACTS / "lab-panel-sidebar-dark.png"))
    use_theme(page, "JupyterLab Light")


def use_theme(page, theme: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(theme)}$")).click()
    light = "false" if "Dark" in theme else "true"
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", light)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)  # the splash covers theme changes


def test_stop_moves_the_badge_to_stopped_and_delete_asks_first(browser_page, lab_server, endpoints, rest):
    page = browser_page
    open_lab(page, lab_server)
    show_panel(page)
    name = endpoints["doomed"]
    split = card(page, name)
    expect(split.locator(".jp-ServingBadge")).to_have_text("Ready")

    split.locator('[data-action="stop"]').click()
    expect(split.locator(".jp-ServingBadge")).to_have_text("Not ready (Stopped)", timeout=60_000)
    assert rest.get(name)["state"]["suspend"] != "NOT_SUSPENDED"
    expect(split.locator('[data-action="start"]')).to_be_enabled()
    expect(split.locator('[data-action="query"]')).to_be_disabled()
    screenshot(page, "lab-panel-stopped")

    # Delete asks for confirmation; Cancel keeps the endpoint.
    split.locator('[data-action="delete"]').click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text(f'Delete the endpoint "{name}"?')
    screenshot(page, "lab-panel-delete-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert rest.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 200

    split.locator('[data-action="delete"]').click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(split).to_have_count(0, timeout=30_000)
    assert rest.call("GET", f"/api/2.0/serving-endpoints/{name}").status_code == 404


def test_insert_query_cell_runs_and_returns_a_dataframe(browser_page, lab_server, endpoints):
    page = browser_page
    name = endpoints["query"]
    path = write_notebook(lab_server, "query.ipynb", ["x = 1"])
    open_lab(page, lab_server, path)
    wait_kernel_idle(page)
    show_panel(page)

    card(page, name).locator('[data-action="query"]').click()
    nb = page.locator(NOTEBOOK)
    cells = nb.locator(".jp-CodeCell")
    # A cell loading the magics goes on top and runs at once (it names the backend the kernel uses);
    # the query cell goes below the active cell, not run.
    expect(cells).to_have_count(3)
    expect(cells.nth(0).locator(".jp-InputArea-editor")).to_have_text("%load_ext jupyter_serving")
    expect(cells.nth(0).locator(".jp-OutputArea-output")).to_contain_text(
        "%serve and %%query will use the local backend at")
    expect(cells.nth(1).locator(".jp-InputArea-editor")).to_have_text("x = 1")
    query_cell = cells.nth(2)
    editor = query_cell.locator(".jp-InputArea-editor")
    expect(editor).to_contain_text(f"%%query {name}")
    expect(editor).to_contain_text('"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"]')
    expect(query_cell.locator(".jp-InputPrompt")).to_have_text("[ ]:")

    editor.click()
    page.keyboard.press("Shift+Enter")
    table = query_cell.locator(".jp-OutputArea-output table.dataframe")
    expect(table).to_be_visible(timeout=60_000)
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(query_cell.locator(".jp-OutputArea-output")).not_to_contain_text("Error")
    screenshot(page, "lab-panel-query-cell")


def test_open_status_without_a_notebook_opens_one_and_runs_status_watch(browser_page, lab_server, endpoints):
    page = browser_page
    name = endpoints["query"]
    open_lab(page, lab_server)  # the launcher, no notebook open
    show_panel(page)

    card(page, name).locator('[data-action="status"]').click()
    cells = page.locator(NOTEBOOK).locator(".jp-CodeCell")
    # A new notebook: its empty first cell loads the magics, the status cell comes below; both run.
    expect(cells).to_have_count(2, timeout=60_000)
    expect(cells.nth(0).locator(".jp-InputArea-editor")).to_have_text("%load_ext jupyter_serving")
    status_cell = cells.nth(1)
    expect(status_cell.locator(".jp-InputArea-editor")).to_have_text(f"%serve status {name} --watch")
    output = status_cell.locator(".jp-OutputArea-output")
    expect(output.first).to_contain_text(re.compile(rf"{name}\s+Ready"), timeout=60_000)
    expect(output.first).not_to_contain_text("DEPLOYMENT_READY")
    expect(status_cell.locator(".jp-InputPrompt")).to_have_text("[2]:")
    expect(cells.nth(0).locator(".jp-InputPrompt")).to_have_text("[1]:")
    screenshot(page, "lab-panel-status-cell")


def test_errors_show_one_line_and_retry_recovers(browser_page, lab_server, endpoints):
    page = browser_page
    failure = {"error": {"message": "Cannot reach the Databricks workspace at https://example.invalid "
                                    "(connection refused). Check the host URL and your network/VPN.",
                         "kind": "ConnectionFailedError", "code": None}}
    requests: list[str] = []

    def backend_down(route):
        # down until the user clicks Retry (a poll in between would hide the error before the click)
        requests.append(route.request.url)
        if "reconnect=1" in route.request.url:
            route.continue_()
        else:
            route.fulfill(status=502, content_type="application/json", body=json.dumps(failure))

    page.route("**/jupyter-serving/api/endpoints*", backend_down)
    open_lab(page, lab_server)
    panel = show_panel(page)
    error = panel.locator(".jp-ServingPanel-error")
    expect(error).to_be_visible()
    expect(error.locator(".jp-ServingPanel-errorText")).to_have_text(failure["error"]["message"])
    box = error.locator(".jp-ServingPanel-errorText").bounding_box()
    assert box and box["width"] > 100
    # only the error and Retry: no "No serving endpoints yet" under it
    expect(panel.locator(".jp-ServingPanel-empty")).to_be_hidden()
    expect(panel.locator(".jp-ServingPanel-list")).to_be_hidden()
    screenshot(page, "lab-panel-error")

    with page.expect_request(lambda r: "jupyter-serving/api/endpoints?reconnect=1" in r.url):
        error.get_by_role("button", name="Retry").click()
    page.unroute("**/jupyter-serving/api/endpoints*")
    expect(error).to_be_hidden()
    expect(card(page, endpoints["query"]).locator(".jp-ServingBadge")).to_have_text("Ready")


def test_poll_refreshes_on_its_interval_and_pauses_while_hidden(browser_page, lab_server, endpoints):
    """Timers run on Playwright's clock: no waiting for real intervals."""
    page = browser_page
    page.clock.install()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/jupyter-serving/api/endpoints" in r.url else None)
    open_lab(page, lab_server)
    show_panel(page)
    expect(card(page, endpoints["query"]).locator(".jp-ServingBadge")).to_have_text("Ready")

    with page.expect_request(lambda r: "/jupyter-serving/api/endpoints" in r.url):
        page.clock.run_for(6_000)  # the idle interval is 5 s

    page.locator(TAB).click()  # collapse the sidebar: the poll stands by
    expect(page.locator(PANEL)).to_be_hidden()
    page.clock.run_for(2_000)
    page.evaluate("1")  # a round trip: request events fired so far have been delivered
    before = len(requests)
    page.clock.run_for(120_000)
    page.evaluate("1")
    assert len(requests) == before, requests[before:]

    with page.expect_request(lambda r: "/jupyter-serving/api/endpoints" in r.url):
        show_panel(page)  # shown again: refreshes at once


def clipboard(page, done, timeout: float = 30.0) -> str:
    """The clipboard's text once `done(text)` holds."""
    import time

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page.evaluate("navigator.clipboard.readText()")
        if done(text):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"the clipboard holds {text!r}")


def test_copy_as_curl_and_python_and_the_traffic_action(browser_page, lab_server, endpoints, local_backend):
    page = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    name = endpoints["query"]
    open_lab(page, lab_server)
    show_panel(page)
    card(page, name).locator('[data-action="copy-curl"]').click()
    curl = clipboard(page, lambda text: text.startswith("curl"))
    assert "Authorization: Bearer $DATABRICKS_TOKEN" in curl and f"/serving-endpoints/{name}/invocations" in curl
    assert local_backend.token not in curl
    card(page, name).locator('[data-action="copy-python"]').click()
    python = clipboard(page, lambda text: "WorkspaceClient" in text)
    assert f'w.serving_endpoints.query(name="{name}"' in python and "openai" not in python
    compile(python, "<copied>", "exec")
    screenshot(page, "lab-panel-sidebar-ux")
    card(page, name).locator('[data-action="traffic"]').click()
    cells = page.locator(NOTEBOOK).locator(".jp-CodeCell")
    expect(cells).to_have_count(2, timeout=60_000)
    expect(cells.nth(1).locator(".jp-InputArea-editor")).to_have_text(f"%serve traffic {name}")
    expect(cells.nth(1).locator(".jp-OutputArea-output").first).to_contain_text("Traffic split",
                                                                                timeout=60_000)
    page.locator(PANEL).screenshot(path=str(ARTIFACTS / "lab-panel-sidebar.png"))
