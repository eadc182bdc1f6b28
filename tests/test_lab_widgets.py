"""The widgets in a real JupyterLab, in Debian's Chromium (Playwright; fixtures in tests/browser_support.py).

A notebook loads the extension and shows the create form; the test fills it in like a person
(endpoint name, model, a second entity, the traffic slider by keyboard), clicks Create and sees
READY; then shows the traffic editor and the status panel for the new endpoint. A screenshot of
each widget is kept under test-artifacts/.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from jupyter_serving import api
from tests.browser_support import (
    ARTIFACTS,
    NOTEBOOK,
    active_notebook,
    open_lab,
    run_in_new_cell,
    wait_kernel_idle,
    write_notebook,
)
from tests.conftest import unique

FORM = ".jupyter-serving-create"
TRAFFIC = ".jupyter-serving-traffic"
STATUS = ".jupyter-serving-status"


def shoot(page, locator, name: str) -> None:
    """A screenshot of one widget. The viewport grows to hold it whole: JupyterLab scrolls the
    notebook inside the page, so an element taller than the viewport would be cut."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = page.viewport_size
    box = locator.bounding_box()
    if box and box["height"] + 250 > before["height"]:
        page.set_viewport_size({"width": before["width"], "height": int(box["height"]) + 400})
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(before)


@pytest.fixture
def client(local_backend):
    return api.ServingClient.connect()


def test_create_form_in_jupyterlab(lab_server, browser_page, client, iris_models):
    page = browser_page
    name = unique("lab")
    v1, v2 = iris_models["versions"][:2]
    path = write_notebook(lab_server, "serving-widgets.ipynb", [
        "%load_ext jupyter_serving",
        "from jupyter_serving.widgets import create_form\n"
        f"form = create_form(model={iris_models['name']!r}, version={v1!r})\n"
        "form",
    ])
    open_lab(page, lab_server, path)
    wait_kernel_idle(page, timeout=120_000)
    nb = active_notebook(page)
    # Run > Run All Cells, through the menu (no dependence on keyboard focus)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    form = nb.locator(FORM)
    form.wait_for(timeout=120_000)

    # the registry answered: the model is selected, its newest-first versions listed, names pre-filled
    first = form.locator(".jupyter-serving-entity").first
    model_select = first.locator("select").first
    page.wait_for_function(
        "(sel) => { const s = document.querySelector(sel); return s && s.value && s.selectedOptions.length"
        " && s.selectedOptions[0].textContent.includes('main.ml.iris'); }",
        arg=f"{NOTEBOOK} {FORM} .jupyter-serving-entity select", timeout=60_000)
    assert model_select.locator("option:checked").inner_text() == iris_models["name"]
    form.get_by_text("Model artifacts").first.wait_for(timeout=30_000)
    name_input = form.locator("input[type=text]").first
    assert name_input.input_value().startswith("iris")

    # a person's edits: the endpoint name, a second entity (version 2), traffic 70/30 by keyboard
    name_input.fill(name)
    form.get_by_role("button", name="Add served entity").click()
    second = form.locator(".jupyter-serving-entity").nth(1)
    second.get_by_text("Model artifacts").wait_for(timeout=30_000)
    # the new entity takes the same model, at the version the first one does not serve
    expect(second.locator("select").first.locator("option:checked")).to_have_text(iris_models["name"])
    expect(second.locator("select").nth(1).locator("option:checked")).to_have_text(v2)
    second.get_by_text(f"iris-{v2}").first.wait_for(timeout=30_000)
    handle = form.locator(".noUi-handle").first
    handle.wait_for(timeout=30_000)
    handle.focus()
    for _ in range(20):
        page.keyboard.press("ArrowRight")
    form.get_by_text(f"iris-{v1} 70%").first.wait_for(timeout=30_000)
    form.get_by_text("Valid: 2 served entities").wait_for(timeout=30_000)
    shoot(page, form, "widget-create-form")
    form.get_by_role("button", name="Show code").click()
    form.get_by_text(f"%serve create {name} --model main.ml.iris --version {v1}").wait_for(timeout=30_000)
    shoot(page, form.locator(".widget-html").filter(has_text="Re-create this endpoint"), "widget-create-form-code")
    form.get_by_role("button", name="Hide code").click()

    form.get_by_role("button", name="Create").click()
    form.locator(STATUS).get_by_text("Creating endpoint").first.wait_for(timeout=30_000)
    form.get_by_text(f"Endpoint '{name}' is Ready").wait_for(timeout=120_000)
    status = client.get(name)
    assert status.is_ready and status.traffic == {f"iris-{v1}": 70, f"iris-{v2}": 30}
    shoot(page, form, "widget-create-form-ready")

    # the kernel was never blocked: a cell runs right away
    run_in_new_cell(page, "print('kernel free', 6 * 7)")
    nb.get_by_text("kernel free 42").wait_for(timeout=30_000)

    # the traffic editor: 50/50 by the "Even split" button, Apply, the new split serves
    run_in_new_cell(page, f"from jupyter_serving.widgets import TrafficEditor\nTrafficEditor({name!r})")
    editor = nb.locator(TRAFFIC)
    editor.wait_for(timeout=60_000)
    editor.get_by_role("button", name="Even split").click()
    editor.get_by_text("-20").first.wait_for(timeout=30_000)
    shoot(page, editor, "widget-traffic-editor")
    editor.get_by_role("button", name="Apply").click()
    editor.get_by_text("Applied:").wait_for(timeout=90_000)
    assert client.get(name).traffic == {f"iris-{v1}": 50, f"iris-{v2}": 50}

    # the status panel
    run_in_new_cell(page, f"from jupyter_serving.widgets import StatusPanel\nStatusPanel({name!r})")
    panel = nb.locator(f".jp-OutputArea {STATUS}").last
    panel.get_by_text("Ready: the endpoint accepts queries.").wait_for(timeout=60_000)
    shoot(page, panel, "widget-status-panel")
    errors = [m for m in page.console_messages if "pageerror" in m]
    assert not errors, errors
    client.delete(name)


def test_gpu_advice_in_jupyterlab(lab_server, browser_page):
    """A large model (a made-up catalog: 15 GB of transformers weights): the form recommends the
    smallest GPU that fits and warns when the chosen one is too small."""
    page = browser_page
    path = write_notebook(lab_server, "serving-gpu.ipynb", [
        "from jupyter_serving.widgets import StaticCatalog, ModelInfo, create_form\n"
        "catalog = StaticCatalog({'main.llm.chat': {'3': ModelInfo('main.llm.chat', '3', 15_000_000_000,"
        " ('python_function', 'transformers'))}}, description='a demo catalog')\n"
        "create_form(catalog=catalog)",
    ])
    open_lab(page, lab_server, path)
    wait_kernel_idle(page, timeout=120_000)
    nb = active_notebook(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    form = nb.locator(FORM)
    form.get_by_text("Recommended: GPU_MEDIUM").wait_for(timeout=120_000)
    form.get_by_text("will be slow on CPU").first.wait_for(timeout=30_000)
    compute = form.locator(".jupyter-serving-entity select").nth(2)
    compute.select_option(label="GPU_SMALL · 1× T4 · 16 GB")
    form.get_by_text("Too small").first.wait_for(timeout=30_000)
    form.get_by_text("✖ too small").first.wait_for(timeout=30_000)
    shoot(page, form, "widget-create-form-gpu")
    form.get_by_role("button", name="Use recommended").click()
    expect(compute.locator("option:checked")).to_have_text(re.compile(r"^GPU_MEDIUM\W"))
    expect(form.get_by_text("Too small: the model")).to_have_count(0)


def test_status_panel_failure_in_jupyterlab(lab_server, browser_page, client, broken_model):
    """`%serve status NAME --watch`'s panel on a deployment that fails: the reason and the tail of
    the build logs."""
    page = browser_page
    name = unique("labfail")
    client.create(name, model=broken_model["name"], version=broken_model["version"], wait=False)
    try:
        path = write_notebook(lab_server, "serving-status.ipynb", [
            f"from jupyter_serving.widgets import status_panel\nstatus_panel({name!r})"])
        open_lab(page, lab_server, path)
        wait_kernel_idle(page, timeout=120_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        panel = active_notebook(page).locator(STATUS)
        panel.get_by_text("Build logs of broken-1").wait_for(timeout=120_000)
        panel.get_by_text("weights are corrupt").first.wait_for(timeout=30_000)
        panel.get_by_text("Update failed").first.wait_for(timeout=30_000)
        shoot(page, panel, "widget-status-panel-failed")
    finally:
        client.delete(name)


def test_bench_widget_in_jupyterlab(lab_server, browser_page):
    """The BenchmarkWidget on the bench fake server (20 ms per request, 4 slots), two served
    entities: a sweep, the chart, the readable table, and Apply asking which entity to resize."""
    page = browser_page
    root = str(Path(__file__).resolve().parent.parent)
    path = write_notebook(lab_server, "serving-bench.ipynb", [
        f"import sys\nsys.path.insert(0, {root!r})\n"
        "from tests.test_bench_widget import FakeServer\nfrom tests.test_ux_widgets import MultiClient\n"
        "from jupyter_serving.bench.widget import BenchmarkWidget\n"
        "server = FakeServer('--sleep-ms', '20', '--max-concurrency', '4')\n"
        "w = BenchmarkWidget('fake', MultiClient(server.url), concurrency='1,2,4,8', duration=1.0,"
        " warmup=0.2, target_qps=100)\nw.add_class('jupyter-serving-bench')\nw",
    ])
    open_lab(page, lab_server, path)
    wait_kernel_idle(page, timeout=120_000)
    nb = active_notebook(page)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    widget = nb.locator(".jupyter-serving-bench")
    widget.wait_for(timeout=120_000)
    widget.get_by_role("button", name="Run").click()
    widget.get_by_text("Done: 4 step(s)").wait_for(timeout=90_000)
    widget.get_by_text("serves several entities").first.wait_for(timeout=30_000)
    expect(widget.get_by_role("button", name="Apply")).to_be_disabled()
    expect(widget.locator("th", has_text="client saturated")).to_have_count(1)
    shoot(page, widget, "widget-bench")
    run_in_new_cell(page, "server.stop()")
