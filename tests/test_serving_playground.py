"""The playground in a real headless Chromium (selenium): type code, put the cursor at the gap, fill in the middle,
and see the streamed, marked middle equal to the API's greedy middle, on the package's small trained model.

`CODELLAMA_PLAYGROUND_SCREENSHOT=docs/playground.png` also saves the screenshot docs/serving.md shows. In CI (`CI`
set) a missing Chromium fails the test; elsewhere it skips, saying what to install.
"""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from live_server import LiveServer, torch_app

from transformers_codellama.serving.default_model import DEFAULT_MODEL_NAME, load_default_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium for the playground test: apt-get install -y chromium chromium-driver")
    pytest.skip("no headless Chromium here: apt-get install -y chromium chromium-driver", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (after the skip: selenium is only needed with a browser)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PREFIX = "class Stack:\n    def __init__(self):\n        self._items = []\n\n    def __len__(self):\n"
SUFFIX = "\n    def __iter__(self):\n        return iter(self._items)\n"


@pytest.fixture(scope="module")
def url():
    model, tokenizer = load_default_model()
    with LiveServer(torch_app(model, tokenizer, model_name=DEFAULT_MODEL_NAME)) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,540", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def _text(browser, element_id: str) -> str:
    return browser.execute_script(f"return document.getElementById('{element_id}').textContent")


@pytest.mark.parametrize("layout", ["psm", "spm"])
def test_the_playground_streams_the_apis_greedy_middle_at_the_cursor(url, browser, layout):
    browser.get(url + "/")
    for field, value in (("max-tokens", "24"), ("temperature", "0")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    Select(browser.find_element(By.ID, "layout")).select_by_value(layout)
    code = browser.find_element(By.ID, "code")
    code.clear()
    # One call: WebDriver puts the caret at the end each time it starts typing into a field.
    code.send_keys(PREFIX + SUFFIX + Keys.LEFT * len(SUFFIX))  # the cursor back to the gap, as a user puts it
    browser.find_element(By.ID, "fill").click()
    WebDriverWait(browser, 60).until(
        lambda driver: driver.find_element(By.ID, "status").get_attribute("data-state") in ("done", "error")
    )
    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("data-state") == "done", status.text
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 24, "temperature": 0,
            "spm_infill": layout == "spm"}  # fmt: skip
    expected = httpx.post(url + "/infill", json=body, timeout=60).json()["content"]
    assert expected.strip()  # the trained model writes something here
    assert _text(browser, "middle") == expected
    assert _text(browser, "prefix") == PREFIX and _text(browser, "suffix") == SUFFIX
    assert browser.find_element(By.ID, "middle").tag_name == "mark"  # visibly marked
    screenshot = os.environ.get("CODELLAMA_PLAYGROUND_SCREENSHOT")
    if screenshot and layout == "psm":
        browser.save_screenshot(screenshot)
