"""An unmodified third-party BirdNET-Go client, aiobirdnetgo (written for Home Assistant; pinned in the dev
extra), reads a real ``birdd web`` process: recent detections, a day's species summary, a detection's clip
and spectrogram, the KPIs, and a detection from the live stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from web_fixtures import HOST, SPECIES, WebProcess, fill_store

aiobirdnetgo = pytest.importorskip("aiobirdnetgo")

pytestmark = pytest.mark.integration


async def read_station(port: int, clip_id: int, store) -> dict:
    async with aiobirdnetgo.BirdNetGoClient(host=HOST, port=port) as client:
        found = {"ping": await client.ping(), "recent": await client.get_recent_detections(limit=5),
                 "daily": await client.get_daily_species_summary(date=dt.date.today().isoformat()),
                 "one": await client.get_detection(clip_id), "kpis": await client.get_kpis(),
                 "health": await client.get_health(), "info": await client.get_system_info(),
                 "summary": await client.get_species_summary()}
        for kind, url in (("clip", client.get_audio_clip_url(clip_id)),
                          ("spectrogram", client.get_spectrogram_url(clip_id))):
            async with client.session.get(url) as response:
                found[kind] = (response.status, response.headers["Content-Type"], await response.read())
        stream = client.stream_detections(auto_reconnect=False, read_timeout=30)
        threading.Timer(1.0, lambda: found.setdefault("live_id", store.add(2, time.time() - 1, 0.91))).start()
        async for detection in stream:
            found["live"] = detection
            stream.stop()
            break
    return found


def test_aiobirdnetgo_reads_birdd_web(tmp_path, rng):
    store = fill_store(tmp_path / "station", rng, count=20)
    web = WebProcess(tmp_path, store.path, store.clips)
    try:
        clip_id = store.ids[-2]  # today, with a clip
        found = asyncio.run(asyncio.wait_for(read_station(web.port, clip_id, store), 60))
    finally:
        assert web.stop() == 0
    assert found["ping"] is True
    assert len(found["recent"]) == 5 and all(d.common_name and d.scientific_name for d in found["recent"])
    assert all(0 < d.confidence < 1 and d.date and d.time and d.species_code for d in found["recent"])
    daily = found["daily"]
    assert {s.common_name for s in daily} == {common for _, common, _ in SPECIES}
    assert all(len(s.hourly_counts) == 24 and sum(s.hourly_counts) == s.count for s in daily)
    assert all(s.first_heard <= s.latest_heard and 0 < s.max_confidence <= 1 for s in daily)
    one = found["one"]
    assert one.id == clip_id and one.clip_name and one.clip_name.endswith(".flac")
    status, content_type, body = found["clip"]
    assert (status, content_type) == (200, "audio/flac") and body.startswith(b"fLaC")
    status, content_type, body = found["spectrogram"]
    assert (status, content_type) == (200, "image/png") and body.startswith(b"\x89PNG")
    assert found["kpis"].lifetime_species == len(SPECIES) and found["kpis"].today_detections > 0
    assert found["health"].status == "healthy" and found["info"].num_cpu >= 1
    assert sum(s.count for s in found["summary"]) == 20
    assert found["live"].id == found["live_id"] and found["live"].common_name == SPECIES[2][1]
    assert "Traceback" not in web.log.read_text()
