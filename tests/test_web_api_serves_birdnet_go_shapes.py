"""``/api/v2`` answers with BirdNET-Go's field names, nesting and units, from what the store holds."""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.error
import urllib.request

import pytest
from web_fixtures import SPECIES, ServerThread, fill_store, web_config

from daemon import __version__

DETECTION_KEYS = {"id", "date", "time", "timestamp", "beginTime", "endTime", "speciesCode", "scientificName",
                  "commonName", "confidence", "modelType", "verified", "locked"}


@pytest.fixture
def station(tmp_path, rng):
    store = fill_store(tmp_path, rng, count=40)
    server = ServerThread(web_config(store))
    yield store, server.url
    server.stop()


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        return json.load(response)


def test_recent_detections_are_newest_first_in_birdnet_go_fields(station):
    store, url = station
    recent = get(f"{url}/api/v2/detections/recent?limit=5")
    assert [d["timestamp"] for d in recent] == sorted((d["timestamp"] for d in recent), reverse=True)
    newest = max(store.ids, key=lambda i: (get(f"{url}/api/v2/detections/{i}")["timestamp"], i))  # ties: newer id
    assert recent[0]["id"] == newest
    for detection in recent:
        assert DETECTION_KEYS <= detection.keys() <= DETECTION_KEYS | {"clipName"}
        assert 0 < detection["confidence"] < 1
        assert dt.datetime.fromisoformat(detection["timestamp"]).tzinfo is not None
        assert detection["date"] == detection["timestamp"][:10] and detection["time"] == detection["timestamp"][11:19]
    assert len(get(f"{url}/api/v2/detections/recent")) == 10  # BirdNET-Go's default


def test_clip_name_only_when_a_clip_is_kept_and_never_a_path(station):
    _, url = station
    page = get(f"{url}/api/v2/detections?limit=40")["data"]
    with_clip = [d for d in page if "clipName" in d]
    assert 0 < len(with_clip) < len(page)
    assert all("/" not in d["clipName"] and d["clipName"].endswith(".flac") for d in with_clip)
    assert all("source" not in d for d in page)  # unauthenticated: no device or file names


def test_detections_page_and_filter_by_date_species_and_confidence(station):
    _, url = station
    page = get(f"{url}/api/v2/detections?limit=7&offset=7")
    assert (page["total"], page["limit"], page["offset"], page["current_page"], page["total_pages"]) == (40, 7, 7, 2, 6)
    everything = get(f"{url}/api/v2/detections?numResults=1000")["data"]
    assert [d["id"] for d in page["data"]] == [d["id"] for d in everything[7:14]]
    today = dt.date.today().isoformat()
    day = get(f"{url}/api/v2/detections?date={today}&limit=1000")
    assert day["total"] == sum(d["date"] == today for d in everything) and {d["date"] for d in day["data"]} == {today}
    for species in ("norcar", "Cardinalis cardinalis", "northern cardinal"):
        hits = get(f"{url}/api/v2/detections?species={urllib.request.quote(species)}&limit=1000")["data"]
        assert {d["speciesCode"] for d in hits} == {"norcar"} and len(hits) == 8
    strong = get(f"{url}/api/v2/detections?confidence=%3E%3D80&limit=1000")["data"]  # >=80 (%)
    assert strong and all(d["confidence"] >= 0.8 for d in strong)
    assert len(strong) == sum(d["confidence"] >= 0.8 for d in everything)
    oldest = get(f"{url}/api/v2/detections?sortBy=date_asc&limit=1")["data"][0]
    assert oldest["id"] == everything[-1]["id"]


def test_one_detection_by_id_and_404_for_an_unknown_one(station):
    store, url = station
    detection = get(f"{url}/api/v2/detections/{store.ids[3]}")
    assert detection["id"] == store.ids[3] and detection["speciesCode"] == SPECIES[3][0]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{url}/api/v2/detections/999999", timeout=10)
    assert missing.value.code == 404 and json.load(missing.value)["code"] == 404


def test_daily_species_summary_counts_each_hour(station):
    _, url = station
    everything = get(f"{url}/api/v2/detections?limit=1000")["data"]
    today = dt.date.today().isoformat()
    daily = get(f"{url}/api/v2/analytics/species/daily?date={today}")
    assert daily == get(f"{url}/api/v2/analytics/species/daily")  # default: today
    assert [d["count"] for d in daily] == sorted((d["count"] for d in daily), reverse=True)
    for summary in daily:
        mine = [d for d in everything if d["speciesCode"] == summary["species_code"] and d["date"] == today]
        assert summary["count"] == len(mine) == sum(summary["hourly_counts"]) and len(summary["hourly_counts"]) == 24
        for hour, count in enumerate(summary["hourly_counts"]):
            assert count == sum(int(d["time"][:2]) == hour for d in mine)
        assert summary["max_confidence"] == max(d["confidence"] for d in mine)
        assert summary["first_heard"] == min(d["time"] for d in mine)
        assert summary["latest_heard"] == max(d["time"] for d in mine)
        assert summary["high_confidence"] == (summary["max_confidence"] >= 0.8)
        assert summary["common_name"] == mine[0]["commonName"]
        assert summary["scientific_name"] == mine[0]["scientificName"]
    assert len(get(f"{url}/api/v2/analytics/species/daily?limit=2")) == 2
    strong = get(f"{url}/api/v2/analytics/species/daily?min_confidence=90")
    assert all(s["max_confidence"] >= 0.9 for s in strong) and len(strong) < len(daily)


def test_species_summary_kpis_and_system_info(station):
    _, url = station
    summary = get(f"{url}/api/v2/analytics/species/summary")
    assert sorted(s["species_code"] for s in summary) == sorted(code for code, _, _ in SPECIES)
    assert sum(s["count"] for s in summary) == 40
    assert all(s["first_heard"] <= s["last_heard"] and s["avg_confidence"] <= s["max_confidence"] for s in summary)
    detections = get(f"{url}/api/v2/detections?limit=1000")["data"]
    for s in summary:  # the times the species' detections carry (their window ends), as the daily summary's
        stamps = sorted(d["timestamp"] for d in detections if d["speciesCode"] == s["species_code"])
        assert (s["first_heard"], s["last_heard"]) == (stamps[0], stamps[-1])
    today = dt.date.today()
    one_day = get(f"{url}/api/v2/analytics/species/summary?start_date={today}&end_date={today}")
    assert sum(s["count"] for s in one_day) < 40
    kpis = get(f"{url}/api/v2/dashboard/kpis")
    assert kpis["lifetime_species"] == len(SPECIES)
    assert kpis["today_detections"] == get(f"{url}/api/v2/detections?date={today}")["total"]
    assert kpis["detection_streak"] == {"days": 2, "start_date": (today - dt.timedelta(days=1)).isoformat()}
    assert kpis["best_day"] == {"date": today.isoformat(), "count": kpis["today_detections"]}
    info = get(f"{url}/api/v2/system/info")
    assert {"hostname", "kernel_version", "uptime_seconds", "app_uptime_seconds", "num_cpu", "os_display",
            "architecture", "environment"} <= info.keys()
    assert get(f"{url}/api/v2/ping") == {"status": "ok"}
    health = get(f"{url}/api/v2/health")
    assert health["status"] == "healthy" and health["database_status"] == "connected"


def test_missing_store_is_a_503_not_a_crash(tmp_path, rng):
    store = fill_store(tmp_path, rng, count=1)
    config = web_config(store)
    store.path.rename(tmp_path / "elsewhere.sqlite")
    server = ServerThread(config)
    try:
        with pytest.raises(urllib.error.HTTPError) as unavailable:
            urllib.request.urlopen(f"{server.url}/api/v2/detections/recent", timeout=10)
        assert unavailable.value.code == 503
        assert json.load(unavailable.value)["error"] == "the detection store is not available"
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(f"{server.url}/api/v2/health", timeout=10)
        assert unhealthy.value.code == 503 and unhealthy.value.headers["Server"] == f"birdd/{__version__}"
        health = json.load(unhealthy.value)
        assert health["status"] == "unhealthy" and health["database_status"] == "disconnected"
    finally:
        server.stop()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_serves_on_an_ipv6_address(tmp_path, rng):
    store = fill_store(tmp_path, rng, count=1)
    try:
        server = ServerThread(web_config(store, bind="::1"))
    except OSError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert server.url.startswith("http://[::1]:") and get(f"{server.url}/api/v2/ping") == {"status": "ok"}
    finally:
        server.stop()
