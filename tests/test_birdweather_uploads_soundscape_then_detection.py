"""BirdWeather gets the detection's clip as a FLAC soundscape, then the detection referring to its id, against a
local server following the station API; a failed detection POST is retried without a second soundscape; the
token appears in no log line and no error."""

import io
import json
import logging
import random
import urllib.error
import urllib.request
from datetime import datetime

import numpy as np
import pytest
import soundfile
from http_receivers import BirdWeatherServer

from daemon.clips.encode import encode_clip
from daemon.config import BirdWeatherConfig, ClipsConfig, OutboxConfig, StationConfig, StoreConfig
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.outbound.birdweather import CLIP_WAIT_S, BirdWeatherTarget
from daemon.pipeline.detection import Detection
from daemon.service.delivery import DeliveryWorker
from daemon.sinks.outbox import Outbox
from daemon.store.schema import open_store
from daemon.store.writer import ClipFiles, DetectionStore, epoch_of

TOKEN = "Tok3nOfTheStation-xyz"
MARGIN_S = 1.0


@pytest.fixture
def server():
    bw = BirdWeatherServer(TOKEN)
    yield bw
    bw.stop()


def _clip(tmp_path, rng, name, fmt="flac"):
    """A clip as the clip worker writes it (window and both margins)."""
    path = tmp_path / "clips" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.1 * rng.standard_normal(int((WINDOW_SECONDS + 2 * MARGIN_S) * SAMPLE_RATE))).astype(np.float32)
    path.write_bytes(encode_clip(samples, SAMPLE_RATE, fmt))
    return name


def _setup(tmp_path, server, clock=None, token=TOKEN, **bw):
    config = BirdWeatherConfig(enabled=True, token=token, url=server.url, min_confidence=0.5, **bw)
    clips = ClipsConfig(dir=str(tmp_path / "clips"), margin_s=MARGIN_S)
    target = BirdWeatherTarget(config, clips, StationConfig(name="t", latitude=60.17, longitude=24.94),
                               **({"clock": clock} if clock else {}))
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")), targets=(target.name,))
    return outbox, DeliveryWorker(target, outbox, retry_max_s=1.0, rng=random.Random(2))


def _run(worker, steps=20):
    for _ in range(steps):
        worker.step()


def test_soundscape_then_detection_for_each_detection(tmp_path, server, rng, make_detection, caplog):
    outbox, worker = _setup(tmp_path, server)
    payloads = []
    for i in range(3):
        payload = make_detection(i) | {"id": i + 1, "clip": _clip(tmp_path, rng, f"2026-11-26/grtit1_{i}.flac")}
        payloads.append(payload)
        outbox.put(payload)
    with caplog.at_level(logging.DEBUG):
        _run(worker)
    assert len(server.soundscapes) == 3 and len(server.detections) == 3
    for payload, detection in zip(payloads, server.detections, strict=True):
        soundscape = server.soundscapes[detection["soundscapeId"]]
        assert soundscape["extension"] == "flac"
        assert soundscape["duration"] == pytest.approx(WINDOW_SECONDS + 2 * MARGIN_S)
        assert detection["commonName"] == payload["common_name"]
        assert detection["scientificName"] == payload["scientific_name"]
        assert detection["confidence"] == pytest.approx(payload["confidence"])
        assert (detection["soundscapeStartTime"], detection["soundscapeEndTime"]) == (MARGIN_S, MARGIN_S + 5)
        assert detection["algorithm"] == "2p4" and (detection["lat"], detection["lon"]) == (60.17, 24.94)
        assert datetime.fromisoformat(detection["timestamp"]).timestamp() == pytest.approx(epoch_of(payload["start"]))
    assert outbox.backlog() == 0
    assert not any(TOKEN in record.getMessage() for record in caplog.records)
    outbox.close()


def test_an_ogg_clip_is_sent_as_flac_and_low_confidence_is_skipped(tmp_path, server, rng, make_detection):
    outbox, worker = _setup(tmp_path, server)
    ogg = _clip(tmp_path, rng, "d/x.ogg", fmt="ogg")
    outbox.put(make_detection(0) | {"confidence": 0.3, "id": 1, "clip": ogg})  # below min_confidence 0.5
    outbox.put(make_detection(1) | {"id": 2, "clip": ogg})
    _run(worker)
    assert len(server.detections) == 1 and server.soundscapes[1]["extension"] == "flac"
    counters = outbox.target_counters("birdweather")
    assert (counters.delivered, counters.skipped) == (1, 1)
    outbox.close()


def test_a_failed_detection_post_is_retried_without_a_second_soundscape(tmp_path, server, rng, make_detection):
    outbox, worker = _setup(tmp_path, server)
    outbox.put(make_detection(0) | {"id": 1, "clip": _clip(tmp_path, rng, "d/a.flac")})
    calls = []
    answer = server.answer

    def fail_first_detection(request):
        calls.append(request.path)
        if "/detections" in request.path and sum("/detections" in p for p in calls) == 1:
            return 500, b'{"success": false}'
        return answer(request)

    server.answer = fail_first_detection
    assert worker.step() > 0 and "HTTP 500" in worker.last_error
    _run(worker)
    assert len(server.soundscapes) == 1 and len(server.detections) == 1
    outbox.close()


def test_a_clip_on_its_way_is_waited_for_and_a_clip_not_kept_is_passed_over(tmp_path, server, rng, make_detection):
    now = [epoch_of(make_detection(0)["end"]) + 5.0]
    outbox, worker = _setup(tmp_path, server, clock=lambda: now[0])
    outbox.put(make_detection(0) | {"id": 1, "clip": "d/later.flac"})
    assert worker.step() > 0 and "waiting for the clip" in worker.last_error
    _clip(tmp_path, rng, "d/later.flac")
    worker.step()
    assert len(server.detections) == 1
    outbox.put(make_detection(1) | {"id": 2, "clip": "d/evicted.flac"})
    now[0] += CLIP_WAIT_S
    worker.step()
    assert len(server.detections) == 1 and outbox.target_counters("birdweather").skipped == 1
    assert worker.target.no_clip == 1
    outbox.close()


def test_a_wrong_token_is_refused_and_not_shown(tmp_path, server, rng, make_detection):
    outbox, worker = _setup(tmp_path, server, token="WrongToken123")
    outbox.put(make_detection(0) | {"id": 1, "clip": _clip(tmp_path, rng, "d/a.flac")})
    worker.step()
    (_, reason, _), = outbox.refused_rows("birdweather")
    assert reason.startswith("HTTP 403") and "WrongToken123" not in reason
    outbox.close()


def test_the_server_rejects_what_the_api_does_not_take():
    """The test server is strict where the API is: a detection needs a soundscape that exists."""
    server = BirdWeatherServer(TOKEN)
    try:
        body = json.dumps({"timestamp": "t", "soundscapeId": 9, "soundscapeStartTime": 0, "soundscapeEndTime": 3,
                           "commonName": "a", "scientificName": "b", "algorithm": "2p4", "confidence": 0.9})
        request = urllib.request.Request(f"{server.url}/api/v1/stations/{TOKEN}/detections", body.encode(),
                                         {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 422
        noise = io.BytesIO()
        soundfile.write(noise, np.zeros(100, np.float32), SAMPLE_RATE, format="WAV")
        request = urllib.request.Request(f"{server.url}/api/v1/stations/{TOKEN}/soundscapes?timestamp=t&type=wav",
                                         noise.getvalue())
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=5)
    finally:
        server.stop()


def test_a_clip_the_store_gave_up_is_not_waited_for(tmp_path, server, rng, make_detection):
    """After a crash the store forgets clips that never landed: BirdWeather goes on at once, not after CLIP_WAIT_S."""
    store = DetectionStore(StoreConfig(path=str(tmp_path / "detections.sqlite")))
    lost, _ = store.add(Detection(**make_detection(0)), ClipFiles("d/lost.flac", "d/lost.png"))
    store.forget_clips([lost])
    config = BirdWeatherConfig(enabled=True, token=TOKEN, url=server.url, min_confidence=0.0)
    just_after = epoch_of(make_detection(0)["end"]) + 5.0
    target = BirdWeatherTarget(config, ClipsConfig(dir=str(tmp_path / "clips")), StationConfig(),
                               open_store(tmp_path / "detections.sqlite", read_only=True), clock=lambda: just_after)
    assert target.send(make_detection(0) | {"id": lost, "clip": "d/lost.flac"}) is False
    store.close()
