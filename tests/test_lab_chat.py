"""The chat playground in a real JupyterLab, in Debian's Chromium (Playwright; fixtures in
tests/browser_support.py), against the session's local backend and its paced GenAI models.

`%serve chat NAME`: a person types an extra body (the model's pacing) and a prompt, presses Enter and
sees the answer grow token by token, then its stats; a long answer streams while the kernel runs
another cell, and Stop ends it (marked stopped). `ChatPlayground(a, b)`: a chat model and an agent
answer the same prompt side by side, both streaming at once; the agent's tool call and result are
shown; Show code and Save transcript. Screenshots go to test-artifacts/chat-*.png.
"""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from jupyter_serving import api
from tests.browser_support import (
    ARTIFACTS,
    active_notebook,
    open_lab,
    run_in_new_cell,
    wait_kernel_idle,
    write_notebook,
)
from tests.conftest import unique

CHAT = ".jupyter-serving-chat"
COLUMN = ".jupyter-serving-chat-column"
TEXT = ".jupyter-serving-chat-text"

pytestmark = pytest.mark.timeout(400)


def shoot(page, locator, name: str) -> None:
    """A screenshot of one widget (the viewport grows to hold it whole)."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = page.viewport_size
    box = locator.bounding_box()
    if box and box["height"] + 250 > before["height"]:
        page.set_viewport_size({"width": before["width"], "height": int(box["height"]) + 400})
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(before)


@pytest.fixture(scope="module")
def client(local_backend):
    return api.ServingClient.connect()


@pytest.fixture
def serve(client):
    made: list[str] = []

    def make(model: dict, prefix: str) -> str:
        name = unique(prefix)
        made.append(name)
        client.create(name, model=model["name"], version=model["version"], timeout=240)
        return name

    yield make
    for name in made:
        try:
            client.delete(name)
        except api.ServingError:
            pass


def _run_all(page, lab_server, path: str) -> None:
    open_lab(page, lab_server, path)
    wait_kernel_idle(page, timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_chat_streams_in_jupyterlab_and_stop_cancels(lab_server, browser_page, serve, delayed_chat_model):
    page = browser_page
    name = serve(delayed_chat_model, "labchat")
    path = write_notebook(lab_server, "serving-chat.ipynb", ["%load_ext jupyter_serving", f"%serve chat {name}"])
    _run_all(page, lab_server, path)
    nb = active_notebook(page)
    chat = nb.locator(CHAT)
    chat.wait_for(timeout=120_000)
    column = chat.locator(COLUMN)
    expect(column).to_have_count(1)
    column.get_by_text("chat model").wait_for(timeout=30_000)  # the endpoint's task, read in the background

    # a person's input: the system prompt, the extra body (the model's pacing), a prompt and Enter
    chat.get_by_placeholder("System prompt (optional)").fill("You are terse.")
    extra = chat.get_by_placeholder('{"custom_inputs": {...}}')
    extra.fill(json.dumps({"custom_inputs": {"ttft_ms": 200, "itl_ms": 300, "tokens": 16}}))
    box = chat.get_by_placeholder("Type a message — Enter sends it")
    box.fill("Hello")
    box.press("Enter")
    answer = column.locator(TEXT).last
    expect(answer).to_contain_text("tok0", timeout=30_000)
    expect(answer).to_contain_text("tok3", timeout=30_000)  # it grows, token by token
    expect(answer).not_to_contain_text("tok15")
    expect(column.get_by_text("● streaming")).to_be_visible()
    shoot(page, chat, "chat-streaming")
    expect(answer).to_contain_text("tok15", timeout=30_000)
    stats = column.locator(".jupyter-serving-chat-stats").last
    expect(stats).to_contain_text("16 tokens", timeout=30_000)
    expect(stats).to_contain_text("TTFT")
    expect(stats).to_contain_text("finish: stop")

    # a long answer: the kernel is free while it streams (another cell runs), and Stop ends it
    extra.fill(json.dumps({"custom_inputs": {"itl_ms": 250, "tokens": 80}}))
    box.fill("Tell me a long story")
    chat.get_by_role("button", name="Send").click()
    story = column.locator(TEXT).nth(1)  # the second answer (`.last` would follow newer ones)
    expect(story).to_contain_text("tok2", timeout=30_000)
    run_in_new_cell(page, "print('kernel free', 6 * 7)")
    nb.get_by_text("kernel free 42").wait_for(timeout=30_000)
    expect(column.get_by_text("● streaming")).to_be_visible()
    chat.get_by_role("button", name="Stop").click()
    column.locator(".jupyter-serving-chat-stopped").wait_for(timeout=15_000)
    stopped = story.inner_text()
    assert stopped.startswith("tok0") and "tok79" not in stopped
    expect(chat.get_by_role("button", name="Send")).to_be_enabled()
    expect(chat.get_by_role("button", name="Stop")).to_be_disabled()
    expect(story).to_have_text(stopped)  # it stopped growing

    # after a Stop the next prompt answers in full (the model worker closed the stopped stream cleanly)
    box.fill("echo: the end")
    box.press("Enter")
    expect(column.locator(TEXT).last).to_have_text("the end", timeout=30_000)
    expect(column.locator(".jupyter-serving-chat-stats").last).to_contain_text("finish: stop", timeout=30_000)
    expect(story).to_have_text(stopped)
    shoot(page, chat, "chat-stopped")
    errors = [m for m in page.console_messages if "pageerror" in m]
    assert not errors, errors


def test_side_by_side_compare_in_jupyterlab(lab_server, browser_page, serve, delayed_chat_model,
                                            responses_agent_model):
    page = browser_page
    chat_name, agent_name = serve(delayed_chat_model, "labcm"), serve(responses_agent_model, "labra")
    pacing = {"custom_inputs": {"ttft_ms": 300, "itl_ms": 300, "tokens": 24}}
    path = write_notebook(lab_server, "serving-chat-compare.ipynb", [
        "from jupyter_serving.widgets import ChatPlayground\n"
        f"playground = ChatPlayground({chat_name!r}, {agent_name!r}, extra={pacing!r})\nplayground"])
    _run_all(page, lab_server, path)
    chat = active_notebook(page).locator(CHAT)
    chat.wait_for(timeout=120_000)
    left, right = chat.locator(COLUMN).nth(0), chat.locator(COLUMN).nth(1)
    left.get_by_text("chat model").wait_for(timeout=30_000)
    right.get_by_text("responses agent").wait_for(timeout=30_000)
    chat.get_by_placeholder("Type a message — Enter sends it").fill("call tool: the weather in Paris?")
    chat.get_by_role("button", name="Send").click()

    # both columns stream at once: each shows its first tokens before either is done
    expect(left.locator(TEXT).last).to_contain_text("tok1", timeout=30_000)
    expect(right.locator(TEXT).last).to_contain_text("tok1", timeout=30_000)
    expect(left.locator(TEXT).last).not_to_contain_text("tok23")
    expect(right.locator(TEXT).last).not_to_contain_text("tok23")
    expect(right.locator(".jupyter-serving-chat-tool")).to_contain_text('get_weather({"city": "Paris"})')
    expect(right.locator(".jupyter-serving-chat-tool-result")).to_contain_text("temperature_c")
    shoot(page, chat, "chat-compare-streaming")
    for column in (left, right):
        expect(column.locator(TEXT).last).to_contain_text("tok23", timeout=30_000)
        expect(column.locator(".jupyter-serving-chat-stats").last).to_contain_text("24 tokens", timeout=30_000)
        expect(column.locator(".jupyter-serving-chat-stats").last).to_contain_text("TTFT")

    chat.get_by_role("button", name="Show code").click()
    code = chat.locator("pre").first
    expect(code).to_contain_text("openai_client.chat.completions.create(")
    expect(code).to_contain_text(f"client.chat({agent_name!r}, messages")
    chat.get_by_role("button", name="Save transcript").click()
    chat.get_by_text("Saved the transcript (5 rows) in the variable chat_transcript").wait_for(timeout=30_000)
    shoot(page, chat, "chat-compare-done")
    errors = [m for m in page.console_messages if "pageerror" in m]
    assert not errors, errors
