"""``birdd web`` over what a real ``birdd run`` stored: the daemon replays a soundscape with the store and
clips on, then the unmodified aiobirdnetgo client (Home Assistant's) lists the recent detections, the day's
species summary and a detection's clip, and headless chromium shows the replayed file's species and a
detection committed while the page is open."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest
from daemon_process import Daemon, write_config
from test_web_page_in_chromium import CHROMEDRIVER, CHROMIUM, chromium
from web_fixtures import HOST, WebProcess

from daemon.config import StoreConfig
from daemon.pipeline.detection import Detection, iso_utc
from daemon.store.writer import DetectionStore

aiobirdnetgo = pytest.importorskip("aiobirdnetgo")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def station(tmp_path_factory, trained_model: Path, synthetic_corpus: Path) -> Path:
    """The state folder of a daemon that replayed one test soundscape (as fast as it goes) and exited."""
    root = tmp_path_factory.mktemp("station")
    soundscape = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[0]
    config = write_config(root / "config.toml", {
        "station": {"name": "test"},
        "audio": {"source": "file", "files": [str(soundscape)], "realtime": False},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0},
        "mqtt": {"enabled": False},
        "outbox": {"path": str(root / "outbox.sqlite")},
        "store": {"path": str(root / "detections.sqlite")},
        "clips": {"dir": str(root / "clips"), "keep_per_species_per_day": 0, "min_free_mb": 0.0},
    })
    daemon = Daemon(config, root / "birdd.log")
    try:
        assert daemon.wait(180) == 0, daemon.log.read_text()
    finally:
        daemon.close()
    return root


def stored(root: Path) -> list[dict]:
    with sqlite3.connect(root / "detections.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM detections ORDER BY id")]


async def read_with_aiobirdnetgo(port: int, clip_id: int, date: str) -> dict:
    async with aiobirdnetgo.BirdNetGoClient(host=HOST, port=port) as client:
        found = {"recent": await client.get_recent_detections(limit=5),
                 "daily": await client.get_daily_species_summary(date=date)}
        async with client.session.get(client.get_audio_clip_url(clip_id)) as response:
            found["clip"] = (response.status, response.headers["Content-Type"], await response.read())
    return found


def test_aiobirdnetgo_reads_what_birdd_run_stored(station, tmp_path):
    rows = stored(station)
    assert rows, "the daemon stored no detection"
    with_clip = [r for r in rows if r["clip"] and (station / "clips" / r["clip"]).is_file()]
    assert with_clip, "the daemon kept no clip"
    date = rows[-1]["local_date"]
    web = WebProcess(tmp_path, station / "detections.sqlite", station / "clips")
    try:
        found = asyncio.run(asyncio.wait_for(read_with_aiobirdnetgo(web.port, with_clip[-1]["id"], date), 60))
    finally:
        assert web.stop() == 0
    newest = sorted(rows, key=lambda r: (r["end_epoch"], r["id"]), reverse=True)[:5]
    assert [d.id for d in found["recent"]] == [r["id"] for r in newest]
    assert [(d.common_name, d.confidence) for d in found["recent"]] == [
        (r["common_name"], round(r["confidence"], 4)) for r in newest]
    on_day = [r for r in rows if r["local_date"] == date]
    assert {s.species_code: s.count for s in found["daily"]} == {
        code: sum(r["species_code"] == code for r in on_day) for code in {r["species_code"] for r in on_day}}
    status, content_type, body = found["clip"]
    assert status == 200 and content_type in ("audio/flac", "audio/ogg")
    assert body == (station / "clips" / with_clip[-1]["clip"]).read_bytes()


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian chromium/chromium-driver missing")
def test_the_page_shows_the_replayed_species_and_a_live_detection(station, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    rows = stored(station)
    today = dt.date.today().isoformat()
    species = {r["common_name"] for r in rows if r["local_date"] == today}
    web = WebProcess(tmp_path, station / "detections.sqlite", station / "clips")
    driver = chromium(tmp_path / "profile")
    writer = DetectionStore(StoreConfig(path=str(station / "detections.sqlite")))
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(web.url + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#species-table tbody tr")) == len(species))
        shown = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#species-table tbody tr td:first-child a")}
        assert shown == species
        wait.until(lambda d: d.find_element(By.ID, "live").text == "live")
        end = time.time() - 1
        last = rows[-1]
        row_id, _ = writer.add(Detection("live-" + str(end), "test", "live", iso_utc(end - 5), iso_utc(end),
                                         last["species_code"], last["common_name"], last["scientific_name"], 0.99,
                                         {"name": "test"}))
        card = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#latest li[data-id="{row_id}"]'))[0]
        assert last["common_name"] in card.text
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        writer.close()
        driver.quit()
        assert web.stop() == 0
