"""The page at / in Debian's headless chromium (Selenium + chromium-driver) against a real ``birdd web``.

It loads with no console errors, lists the store's species, shows a detection committed while it is open
(from the SSE stream), loads its spectrogram, its clip URL answers with audio and plays, and the page fits a
phone's width. Set ``BIRDD_WEB_SCREENSHOT=path.png`` to keep the screenshot (the README's: docs/web.md).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from web_fixtures import SPECIES, WebProcess, fill_store

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium/chromium-driver missing")]
WIDTH, HEIGHT = 1100, 1500


def chromium(profile: Path, width: int = WIDTH, height: int = HEIGHT):
    """Headless chromium with the flags that work offline on this machine (no sandbox as root)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def test_page_shows_species_and_a_live_detection_with_its_spectrogram_and_clip(tmp_path, rng):
    store = fill_store(tmp_path / "station", rng, count=60)
    web = WebProcess(tmp_path, store.path, store.clips)
    driver = chromium(tmp_path / "profile")
    wait = WebDriverWait(driver, 20)
    try:
        driver.get(web.url + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#species-table tbody tr")) == len(SPECIES))
        names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#species-table tbody tr td:first-child a")]
        assert sorted(names) == sorted(common for _, common, _ in SPECIES)
        wait.until(lambda d: d.find_element(By.ID, "live").text == "live")

        committed = time.monotonic()
        new_id = store.add(1, time.time() - 2, 0.97)
        card = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#latest li[data-id="{new_id}"]'))[0]
        seen_after = time.monotonic() - committed
        assert "Northern Cardinal" in card.text and "97 %" in card.text
        image = card.find_element(By.CSS_SELECTOR, "img.spec")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image))
        status, content_type, size = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('/api/v2/audio/{new_id}').then(async r => done([r.status, r.headers.get('content-type'),"
            " (await r.arrayBuffer()).byteLength]));")
        assert (status, content_type) == (200, "audio/flac") and size > 1000
        play = card.find_element(By.CSS_SELECTOR, "button.play")
        play.click()
        wait.until(lambda d: "playing" in play.get_attribute("class"))
        time.sleep(1.5)  # the clip plays; the page settles (live refresh of the species table)
        assert play.get_attribute("disabled") is None, play.get_attribute("title")  # the browser decoded the clip
        screenshot = Path(os.environ.get("BIRDD_WEB_SCREENSHOT", tmp_path / "page.png"))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))

        driver.find_element(By.LINK_TEXT, "Carolina Wren").click()
        wait.until(lambda d: d.find_element(By.ID, "species-title").text == "Carolina Wren")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#species-detections li"))
        driver.set_window_size(390, 844)  # a phone: everything fits the width, nothing scrolls sideways
        driver.get(web.url + "/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#latest li"))
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
        assert seen_after < 5.0
    finally:
        driver.quit()
        assert web.stop() == 0
