"""The page at `GET /` in a real browser: Debian's headless Chromium driven by Selenium loads it
from a real `bert-hub serve`, submits the example, and the result appears (a similarity
heatmap for embeddings; entities marked in the text for token classification). Screenshots go
to the test's output folder. Without a browser the test skips locally, but fails under CI."""
import os
import shutil

import pytest

from serve_process import start_all
from tiny_hf import NER_LABELS, write_model

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT_SECONDS = 30


def _browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        message = ("no headless browser: install Debian's chromium and chromium-driver "
                   "(apt-get install -y chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them on CI")
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", "--window-size=1100,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    return driver


def test_the_page_shows_each_task_result_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser(tmp_path)
    servers = {}
    try:
        write_model(tmp_path / "base", "BertModel")
        write_model(tmp_path / "ner", "BertForTokenClassification", cased=True, labels=NER_LABELS)
        servers = start_all({"embed": [str(tmp_path / "base")], "ner": [str(tmp_path / "ner")]}, tmp_path)
        wait = WebDriverWait(driver, WAIT_SECONDS)

        driver.get(servers["embed"].url + "/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "model"), "embed"))
        driver.find_element(By.ID, "submit").click()
        heatmap = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#shown table.heatmap")))
        cells = heatmap.find_elements(By.TAG_NAME, "td")
        assert len(cells) == 16                                     # 4 example sentences, 4 x 4
        diagonal = [float(cells[i * 5].text) for i in range(4)]
        assert diagonal == [1.0] * 4                                # each sentence with itself
        assert driver.find_element(By.ID, "error").text == ""
        driver.save_screenshot(str(tmp_path / "page-embed.png"))

        driver.get(servers["ner"].url + "/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "model"), "token-classify"))
        text = driver.find_element(By.ID, "f-text")
        text.clear()
        text.send_keys("John Smith works for Acme in Paris.")
        driver.find_element(By.ID, "submit").click()
        shown = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#shown .text-box")))
        plain = driver.execute_script("const b = arguments[0].cloneNode(true); "
                                      "b.querySelectorAll('small').forEach(s => s.remove()); "
                                      "return b.textContent;", shown)
        assert plain == "John Smith works for Acme in Paris."             # marks cover spans of it
        count = driver.find_element(By.CSS_SELECTOR, "#shown p").text
        assert count.endswith("entities") and len(shown.find_elements(By.TAG_NAME, "mark")) == int(count.split()[0])
        driver.save_screenshot(str(tmp_path / "page-ner.png"))

        # A request the server refuses shows its error on the page.
        driver.get(servers["embed"].url + "/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "model"), "embed"))
        driver.find_element(By.ID, "f-sentences").clear()
        driver.find_element(By.ID, "submit").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "error"), "empty"))
    finally:
        driver.quit()
        for server in servers.values():
            assert server.stop() == 0
    assert (tmp_path / "page-embed.png").stat().st_size > 1000
    assert (tmp_path / "page-ner.png").stat().st_size > 1000
