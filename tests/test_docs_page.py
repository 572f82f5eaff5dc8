"""The docs page at ``/``, driven in headless Chromium (Selenium + Debian's chromium-driver, see tests/browser.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import chromium
from tests.conftest import ROOT, ServerProc, start

TARGET = "tests.apps.docs_svc:DocsDemo"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProc]:
    proc = start("asgiserve", TARGET, tmp_path_factory.mktemp("docs"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    yield driver
    driver.quit()


def wait(driver: WebDriver, check, timeout: float = 10):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: check())


def open_page(driver: WebDriver, url: str) -> None:
    driver.set_window_size(1280, 900)
    driver.get(url + "/")
    wait(driver, lambda: driver.execute_script("return document.body.dataset.ready") == "true")


def field(driver: WebDriver, api: str, name: str) -> WebElement:
    return driver.find_element(By.ID, f"f-{api}-{name}")


def try_it(driver: WebDriver, api: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#api-{api} button[type=submit]").click()


def status(driver: WebDriver, api: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"#result-{api} .status")
    return found[0].text if found else ""


def output(driver: WebDriver, api: str, cls: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f"#result-{api} pre.{cls}")
    return found[0].text if found else ""


def snippet(driver: WebDriver, api: str, kind: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, f"#api-{api} pre.{kind}").get_attribute("textContent")


def test_page_is_one_static_file_with_caching_headers(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "public, max-age=3600"
    etag = page.headers["etag"]
    # Self-contained: no script, style or font from anywhere else.
    assert "http://" not in page.text and "https://" not in page.text and " src=" not in page.text
    again = httpx.get(server.url + "/", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = httpx.get(server.url + "/", headers={"if-none-match": '"something-else"'})
    assert other.status_code == 200 and other.content == page.content
    assert len(page.content) < 40_000


def test_form_from_the_schema_and_a_json_answer(server, browser):
    open_page(browser, server.url)
    assert browser.find_element(By.ID, "title").text == "DocsDemo"
    assert "Each api below gets a form." in browser.find_element(By.ID, "description").text
    assert "Classify a text" in browser.find_element(By.CSS_SELECTOR, "#api-classify .doc").text
    text, mode, top = (
        field(browser, "classify", "text"),
        field(browser, "classify", "mode"),
        field(browser, "classify", "top"),
    )
    shout, options = field(browser, "classify", "shout"), field(browser, "classify", "options")
    assert mode.tag_name == "select" and [o.text for o in Select(mode).options] == [
        "(default)",
        "careful",
        "fast",
    ]
    assert Select(mode).first_selected_option.text == "fast"  # the default
    assert (top.get_attribute("type"), top.get_attribute("min"), top.get_attribute("max")) == (
        "number",
        "1",
        "10",
    )
    assert top.get_attribute("value") == "3" and shout.get_attribute("type") == "checkbox"
    assert options.tag_name == "textarea" and "json" in options.get_attribute("class")
    assert "≤ 10" in browser.find_element(By.ID, "f-classify-top-hint").text

    text.send_keys("hello there")
    Select(mode).select_by_visible_text("careful")
    top.clear()
    top.send_keys("4")
    shout.click()
    options.send_keys('{"temperature": 0.9, "stop": ["."]}')
    try_it(browser, "classify")
    wait(browser, lambda: output(browser, "classify", "json"))
    assert status(browser, "classify").startswith("200 OK · ")
    assert json.loads(output(browser, "classify", "json")) == {
        "label": "HELLO THERE",
        "mode": "careful",
        "top": 4,
        "options": {"temperature": 0.9, "stop": ["."]},
    }


def test_validation_errors_show_next_to_the_field(server, browser):
    open_page(browser, server.url)
    field(browser, "classify", "text").send_keys("x")
    top = field(browser, "classify", "top")
    top.clear()
    top.send_keys("50")
    try_it(browser, "classify")
    error = browser.find_element(By.ID, "f-classify-top-error")
    wait(browser, lambda: error.text)
    assert "<= 10" in error.text and top.get_attribute("aria-invalid") == "true"
    assert status(browser, "classify").startswith("400")
    assert browser.switch_to.active_element == top  # focus goes to the field to fix
    assert browser.find_element(By.ID, "f-classify-text-error").text == ""

    # A JSON editor's syntax is checked before anything is sent.
    top.clear()
    top.send_keys("5")
    field(browser, "classify", "options").send_keys("{not json")
    try_it(browser, "classify")
    options_error = browser.find_element(By.ID, "f-classify-options-error")
    wait(browser, lambda: options_error.text)
    assert "Not valid JSON" in options_error.text and "Fix the fields" in status(browser, "classify")
    assert browser.find_element(By.ID, "f-classify-top-error").text == ""


def test_streaming_tokens_appear_before_the_stream_ends(server, browser):
    open_page(browser, server.url)
    prompt = field(browser, "generate", "prompt")
    prompt.clear()
    prompt.send_keys("Hi")
    try_it(browser, "generate")
    wait(browser, lambda: "Hi-first" in output(browser, "generate", "stream"))
    # The server holds the rest back until /release: what is shown arrived while the stream was open.
    assert "streaming…" in status(browser, "generate") and "tok0" not in output(browser, "generate", "stream")
    assert httpx.post(server.url + "/release").text == "released"
    wait(browser, lambda: "stream ended" in status(browser, "generate"))
    assert output(browser, "generate", "stream").split() == ["Hi-first", "tok0", "tok1", "tok2"]


def test_server_sent_events_show_their_data(server, browser):
    open_page(browser, server.url)
    try_it(browser, "events")
    wait(browser, lambda: "stream ended" in status(browser, "events"))
    assert output(browser, "events", "stream").splitlines() == ['{"i":0}', '{"i":1}']


def test_file_upload(server, browser, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("uploaded from the browser")
    open_page(browser, server.url)
    picker = field(browser, "upload", "doc")
    assert picker.get_attribute("type") == "file"
    picker.send_keys(str(doc))
    field(browser, "upload", "note").send_keys("n1")
    try_it(browser, "upload")
    wait(browser, lambda: output(browser, "upload", "json"))
    assert json.loads(output(browser, "upload", "json")) == {
        "size": 25,
        "head": "uploaded from the br",
        "note": "n1",
    }
    assert "-F 'doc=@notes.txt'" in snippet(browser, "upload", "curl")
    assert 'doc=pathlib.Path("notes.txt")' in snippet(browser, "upload", "python")


def test_image_preview_and_file_download(server, browser):
    open_page(browser, server.url)
    try_it(browser, "image")
    img = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#result-image img.preview"))[0]
    wait(
        browser,
        lambda: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img),
    )
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 8
    try_it(browser, "archive")
    link = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#result-archive a.download"))[0]
    assert link.get_attribute("download") == "data.bin" and "100 B" in link.text


def test_snippets_run_as_shown(server, browser, tmp_path):
    open_page(browser, server.url)
    field(browser, "classify", "text").send_keys("it's 'quoted'")
    Select(field(browser, "classify", "mode")).select_by_visible_text("careful")
    field(browser, "classify", "shout").click()
    curl = snippet(browser, "classify", "curl")
    python = snippet(browser, "classify", "python")
    expected = {"label": "IT'S 'QUOTED'", "mode": "careful", "top": 3, "options": None}
    assert shutil.which("curl"), "curl is needed to run the snippet"
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=20)
    assert ran.returncode == 0 and json.loads(ran.stdout) == expected, (curl, ran.stderr)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=30, env=env)
    assert ran.returncode == 0, (python, ran.stderr)
    assert ran.stdout.strip() == repr(expected)


def test_mounted_apps_are_linked(server, browser):
    open_page(browser, server.url)
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#mounts a")}
    assert links["/v1"] == server.url + "/v1/" and links["its docs (/v1/docs)"] == server.url + "/v1/docs"
    assert httpx.get(links["its docs (/v1/docs)"]).status_code == 200  # FastAPI's own page


def test_keyboard_only(server, browser):
    open_page(browser, server.url)
    # Every control has a label, and Ctrl+Enter in a form sends it.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('form input, form select, form textarea')]"
        ".filter(e => !document.querySelector(`label[for='${e.id}']`)).map(e => e.id)"
    )
    assert unlabelled == []
    text = field(browser, "echo", "text")
    text.clear()
    text.send_keys("typed", Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda: output(browser, "echo", "text"))
    assert output(browser, "echo", "text") == "typed"
    # Tab moves from the field to the form's button, and Enter on it sends.
    text.clear()
    text.send_keys("again", Keys.TAB)
    button = browser.switch_to.active_element
    assert button.text == "Try it"
    button.send_keys(Keys.ENTER)
    wait(browser, lambda: output(browser, "echo", "text") == "again")


def test_readable_at_phone_width(server, browser):
    open_page(browser, server.url)
    browser.set_window_size(390, 844)
    wait(browser, lambda: browser.execute_script("return window.innerWidth") <= 400)
    width = browser.execute_script("return window.innerWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    for element in browser.find_elements(By.CSS_SELECTOR, "form input, form select, form textarea, pre"):
        rect = browser.execute_script("return arguments[0].getBoundingClientRect().right", element)
        assert rect <= width, element.get_attribute("id")


def test_token_prompt(tmp_path, browser):
    server = start("asgiserve", TARGET, tmp_path, "--api-token", "s3cret")
    try:
        open_page(browser, server.url)
        browser.execute_script("sessionStorage.clear()")
        open_page(browser, server.url)
        panel = browser.find_element(By.ID, "token-panel")
        assert not panel.is_displayed()
        try_it(browser, "echo")
        wait(browser, lambda: panel.is_displayed())
        assert status(browser, "echo").startswith("401")
        token = browser.switch_to.active_element
        assert token.get_attribute("id") == "token-input"
        token.send_keys("s3cret", Keys.ENTER)
        # The call runs again with the token, once entered.
        wait(browser, lambda: output(browser, "echo", "text") == "hello")
        assert status(browser, "echo").startswith("200") and not panel.is_displayed()
        assert "Authorization: Bearer" in snippet(browser, "echo", "curl")
        assert "s3cret" not in snippet(browser, "echo", "curl")  # snippets read it from $API_TOKEN
        field(browser, "echo", "text").send_keys("!")
        try_it(browser, "echo")
        wait(browser, lambda: output(browser, "echo", "text") == "hello!")
        assert not panel.is_displayed()
        open_page(browser, server.url)  # kept for the tab
        try_it(browser, "echo")
        wait(browser, lambda: output(browser, "echo", "text") == "hello")
    finally:
        server.stop()
