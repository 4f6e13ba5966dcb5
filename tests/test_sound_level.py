"""Sound level: LAeq of tones against the IEC 61672 A-weighting formula, the bands, gaps; and a real daemon's
reports on MQTT (``<prefix>/soundlevel``, not retained), Prometheus and the file the web's live stream reads."""

from __future__ import annotations

import json
import signal
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port
from daemon_process import Daemon, write_config

from daemon.constants import SAMPLE_RATE
from daemon.pipeline.sound_level import NOMINAL_BANDS_HZ, SILENCE_DB, SoundLevelMeter, a_weighting_db
from daemon.store.sound_levels import LatestLevelsReader, LatestLevelsWriter
from daemon.web.sse import DetectionStream


def a_weighting_formula(f: float) -> float:
    """IEC 61672-1 written out, independently of the meter's vectorised version."""
    ra = 12194**2 * f**4 / ((f**2 + 20.6**2) * ((f**2 + 107.7**2) * (f**2 + 737.9**2)) ** 0.5 * (f**2 + 12194**2))
    return 20 * np.log10(ra) + 2.0


def tone(frequency: float, amplitude: float, seconds: float, phase: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


@pytest.mark.parametrize("frequency", [50.0, 125.0, 440.0, 1000.0, 2212.7, 6300.0, 10_000.0, 14_000.0])
@pytest.mark.parametrize("amplitude", [0.5, 0.01])
def test_laeq_of_a_tone_is_the_a_weighting_formula(frequency, amplitude):
    meter = SoundLevelMeter(interval_s=3)
    (level,) = [lv for start in range(0, 3 * SAMPLE_RATE, 3200)
                for lv in meter.push(start, tone(frequency, amplitude, 3)[start:start + 3200])]
    expected = 10 * np.log10(amplitude**2 / 2) + a_weighting_formula(frequency)
    assert level.laeq_db == pytest.approx(expected, abs=0.5)
    assert abs(level.laeq_db - expected) < 0.05  # in fact far closer than the 0.5 dB asked
    assert abs(a_weighting_db(frequency) - a_weighting_formula(frequency)) < 1e-9
    assert a_weighting_formula(1000.0) == pytest.approx(0.0, abs=0.01)


def test_the_tone_is_in_its_band_and_calibration_shifts_every_level():
    meter = SoundLevelMeter(interval_s=2, calibration_db=94.0)
    (level,) = meter.push(0, tone(1000.0, 0.1, 2))
    loudest = int(np.argmax(level.bands_mean_db))
    assert NOMINAL_BANDS_HZ[loudest] == 1000
    assert level.bands_mean_db[loudest] == pytest.approx(10 * np.log10(0.1**2 / 2) + 94.0, abs=0.05)
    assert level.laeq_db == pytest.approx(level.bands_mean_db[loudest], abs=0.05)  # A(1 kHz) = 0 dB
    assert max(level.bands_mean_db[:loudest - 2] + level.bands_mean_db[loudest + 3:]) < level.laeq_db - 60


def test_min_max_mean_follow_the_seconds_and_silence_is_the_floor():
    meter = SoundLevelMeter(interval_s=2)
    quiet, loud = tone(1000.0, 0.01, 1), tone(1000.0, 0.1, 1)
    (level,) = meter.push(0, np.concatenate([quiet, loud]))
    band = NOMINAL_BANDS_HZ.index(1000)
    assert level.bands_min_db[band] == pytest.approx(10 * np.log10(0.01**2 / 2), abs=0.05)
    assert level.bands_max_db[band] == pytest.approx(10 * np.log10(0.1**2 / 2), abs=0.05)
    assert level.bands_mean_db[band] == pytest.approx(10 * np.log10((0.01**2 + 0.1**2) / 4), abs=0.05)
    (silent,) = SoundLevelMeter(interval_s=1).push(0, np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert silent.laeq_db == SILENCE_DB


def test_a_gap_drops_the_unfinished_second():
    meter = SoundLevelMeter(interval_s=2)
    assert meter.push(0, tone(1000.0, 0.1, 1.5)) == []
    assert meter.push(10 * SAMPLE_RATE, tone(1000.0, 0.1, 0.6)) == []  # after a gap: the half second is gone
    (level,) = meter.push(10 * SAMPLE_RATE + round(0.6 * SAMPLE_RATE), tone(1000.0, 0.1, 0.4))
    assert level.seconds == 2 and level.end_sample == 11 * SAMPLE_RATE


def test_the_live_stream_sends_new_reports_from_the_file(tmp_path):
    import threading

    path = tmp_path / "soundlevel.json"
    writer, reader = LatestLevelsWriter(path), LatestLevelsReader(path)
    assert reader.new_reports() == []
    writer({"source": "garden", "timestamp": "t1", "laeq_db": -30.0})
    writer({"source": "pond", "timestamp": "t1", "laeq_db": -40.0})
    assert sorted(r["source"] for r in reader.new_reports()) == ["garden", "pond"]
    assert reader.new_reports() == []

    stop, sent = threading.Event(), []

    class NoStore:
        def connection(self):
            from daemon.errors import StoreError

            raise StoreError("no store yet")

    def write(data: bytes) -> None:
        sent.append(data.decode())
        if len(sent) == 2:
            writer({"source": "garden", "timestamp": "t2", "laeq_db": -20.0})
        if len(sent) == 4:
            stop.set()

    DetectionStream(NoStore(), 0.02, False, stop, lambda: 1, LatestLevelsReader(path)).run(write)
    levels = [json.loads(m.split("data: ")[1]) for m in sent if m.startswith("event: soundlevel")]
    assert [(lv["source"], lv["timestamp"]) for lv in levels] == [("garden", "t1"), ("pond", "t1"), ("garden", "t2")]


@pytest.mark.integration
def test_a_daemon_reports_the_level_on_mqtt_prometheus_and_for_the_web(tmp_path, mosquitto, subscribe,
                                                                         trained_model):
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone(1000.0, 0.1, 30), SAMPLE_RATE)
    metrics_port = free_port()
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "test"},
        "audio": {"source": "file", "files": [str(wav)], "realtime": True},
        "model": {"path": str(trained_model)},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "ha_discovery": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "metrics": {"port": metrics_port},
        "sound_level": {"enabled": True, "interval_s": 1},
    })
    sub = subscribe(mosquitto, "birdd/test/soundlevel")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        reports = sub.wait_for(lambda m: len(m) >= 2, timeout=20)
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.close()
    expected = 10 * np.log10(0.1**2 / 2)  # 1 kHz: A = 0 dB
    payload = reports[-1].json()
    assert not reports[-1].retain
    assert payload["station"] == "test" and payload["source"] == "default" and payload["duration_seconds"] == 1
    assert payload["laeq_db"] == pytest.approx(expected, abs=0.5)
    assert payload["octave_bands"]["1.0_kHz"]["mean_db"] == pytest.approx(expected, abs=0.5)
    assert set(payload["octave_bands"]["1.0_kHz"]) >= {"center_frequency_hz", "min_db", "max_db", "mean_db"}
    laeq = [line for line in scrape.splitlines() if line.startswith('birdd_sound_level_laeq_db{source="default"}')]
    assert laeq and float(laeq[0].split()[-1]) == pytest.approx(expected, abs=0.5)
    assert 'birdd_sound_level_band_db{band="1.0_kHz",source="default"}' in scrape
    latest = json.loads((tmp_path / "soundlevel.json").read_text())
    assert latest["default"]["laeq_db"] == pytest.approx(expected, abs=0.5)
