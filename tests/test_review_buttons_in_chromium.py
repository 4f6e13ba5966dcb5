"""The page's correct / false-positive buttons in Debian's headless chromium against a real ``birdd web`` with
reviews on (basic auth): reached and pressed by keyboard alone, phone-sized touch targets with labels, and the
review lands in the store; a read-only server's page shows no buttons."""

from __future__ import annotations

import base64
import sqlite3

import pytest
from test_web_page_in_chromium import CHROMEDRIVER, CHROMIUM, chromium
from web_fixtures import WebProcess, fill_store

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium/chromium-driver missing")]
USER, PASSWORD = "birder", "hunter2"
MIN_TARGET_PX = 44
"""the smallest touch target WCAG 2.5.5 asks for"""


def verdicts(store_path) -> dict[int, str]:
    with sqlite3.connect(store_path) as conn:
        return dict(conn.execute("SELECT detection, verified FROM reviews WHERE verified IS NOT NULL"))


def test_review_buttons_work_by_keyboard_on_a_phone(tmp_path, rng):
    store = fill_store(tmp_path / "station", rng, count=8)
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    web = WebProcess(tmp_path, store.path, store.clips, auth="basic", username=USER, password_file=str(secret),
                     read_only=False)
    driver = chromium(tmp_path / "profile", width=390, height=844)  # a phone's viewport
    wait = WebDriverWait(driver, 20)
    try:
        driver.execute_cdp_cmd("Network.enable", {})  # the browser's remembered basic-auth credentials
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}})
        driver.get(web.url + "/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#latest li .verdict"))
        card = driver.find_elements(By.CSS_SELECTOR, "#latest li")[0]
        row = int(card.get_attribute("data-id"))
        correct = card.find_element(By.CSS_SELECTOR, "button.verdict.correct")
        wrong = card.find_element(By.CSS_SELECTOR, "button.verdict.false_positive")
        for button in (correct, wrong):
            assert button.get_attribute("aria-label").startswith(("correct: ", "false positive: "))
            assert button.get_attribute("aria-pressed") == "false"
            assert min(button.size["width"], button.size["height"]) >= MIN_TARGET_PX, button.size

        # keyboard only: Tab from the play button (or the name link) until the correct button has focus, Enter
        driver.execute_script("arguments[0].querySelector('a.name').focus()", card)
        keys = ActionChains(driver)
        for _ in range(4):
            if driver.switch_to.active_element == correct:
                break
            keys.send_keys(Keys.TAB).perform()
        assert driver.switch_to.active_element == correct
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        wait.until(lambda d: correct.get_attribute("aria-pressed") == "true")
        assert verdicts(store.path)[row] == "correct"
        ActionChains(driver).send_keys(Keys.TAB).send_keys(Keys.SPACE).perform()  # on to false positive, Space
        wait.until(lambda d: wrong.get_attribute("aria-pressed") == "true")
        assert correct.get_attribute("aria-pressed") == "false" and verdicts(store.path)[row] == "false_positive"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
        web.stop()

    read_only = WebProcess(tmp_path, store.path, store.clips)
    driver = chromium(tmp_path / "profile2", width=390, height=844)
    try:
        driver.get(read_only.url + "/")
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#latest li"))
        assert not driver.find_elements(By.CSS_SELECTOR, ".verdict")
    finally:
        driver.quit()
        read_only.stop()
