"""``birdd run`` on the BirdNET grid: a zero-shot BirdNET bundle picks it by itself (``detection.grid = "auto"``);
the daemon's detections are replay's chunk for chunk (a 32 kHz recording: both resample it to 48 kHz with
kaiser_fast from its start), 3 s long, in the outbox and in the store; an STSG bundle is refused in one line;
replay with filters hears the daemon's stream."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf
from daemon_process import Daemon, write_config
from test_birdnet_grid_equals_birdnetlib import birdsong

from daemon.batch.filtering import ReplayFilters, filtered_scores
from daemon.batch.replay import score_file
from daemon.config import DetectionConfig, FiltersConfig
from daemon.errors import BundleError
from daemon.model.loader import load_model
from daemon.model.tflite_runtime import locate_model_file
from daemon.model.tflite_spec import load_spec
from daemon.model.windows import BirdNETGrid
from daemon.pipeline.policy import DetectionPolicy
from trainer.tflite_zero_shot import all_classes_bundle

pytestmark = pytest.mark.integration
THRESHOLD = 0.05


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    spec = load_spec("birdnet_v2.4")
    try:
        model_path = locate_model_file(spec)
    except BundleError as exc:
        pytest.skip(f"BirdNET model not installed: {exc}")
    return all_classes_bundle(tmp_path_factory.mktemp("bundle") / "all", model_path, spec)


def run_daemon(tmp_path, model, files, detection):
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "t"},
        "audio": {"source": "file", "files": [str(f) for f in files], "realtime": False},
        "model": {"path": str(model)},
        "detection": detection,
        "mqtt": {"enabled": False},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "store": {"path": str(tmp_path / "store.sqlite")},
        "clips": {"enabled": False},
    })
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        return daemon.wait(120), daemon.log.read_text()
    finally:
        daemon.close()


def test_daemon_chunks_equal_replays(bundle_path, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, birdsong(32_000, 9.8, 3), 32_000, subtype="FLOAT")
    model = load_model(bundle_path)
    result = score_file(model, song, BirdNETGrid(1.0, 1.25, 48_000))
    # the threshold ties with the lowest detection at THRESHOLD: BirdNET's rule (above, not at) drops that one
    ties = sorted(c for scores in result.scores
                  for _, c in DetectionPolicy(DetectionConfig(threshold=THRESHOLD), model.species).select(scores))
    threshold = float(np.float32(ties[0]))
    code, log = run_daemon(tmp_path, bundle_path, [song], {"threshold": threshold, "overlap_s": 1.0,
                                                           "sensitivity": 1.25})
    assert code == 0, log
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        stored = db.execute("SELECT start_epoch, end_epoch, species_code, confidence FROM detections").fetchall()
    policy = DetectionPolicy(DetectionConfig(threshold=threshold), model.species, strictly_above=True)
    expected = [(int(start) / 32_000, model.species[j].code, round(c, 4))
                for start, scores in zip(result.starts, result.scores, strict=True) for j, c in policy.select(scores)]
    assert expected, "nothing detected: the comparison would be empty"
    assert len(expected) == len(ties) - ties.count(ties[0]), "the tie was listed"
    origin = min(seconds(p["start"]) for p in payloads)
    got = [(round(seconds(p["start"]) - origin, 3), p["species_code"], p["confidence"]) for p in payloads]
    assert got == [(round(a - expected[0][0], 3), s, c) for a, s, c in expected]
    assert {round(seconds(p["end"]) - seconds(p["start"]), 3) for p in payloads} == {3.0}
    assert len(stored) == len(payloads) and {round(b - a, 3) for a, b, _, _ in stored} == {3.0}


def test_an_stsg_bundle_on_the_birdnet_grid_is_one_line(trained_model, tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, birdsong(32_000, 4.0, 4), 32_000, subtype="FLOAT")
    code, log = run_daemon(tmp_path, trained_model, [song], {"grid": "birdnet"})
    assert code != 0
    assert "detection.grid:" in log and "the BirdNET grid needs a TFLite bundle" in log and "Traceback" not in log


def test_replay_filters_score_the_daemons_stream_on_the_birdnet_grid(bundle_path, tmp_path):
    """``birdd replay`` with filters reads a file as the daemon hears it (32 kHz) and runs its filter chain: on a
    32 kHz recording the chunks are replay's own, and what the confirmation took away is exactly what is missing."""
    song = tmp_path / "song.wav"
    sf.write(song, birdsong(32_000, 9.8, 3), 32_000, subtype="FLOAT")
    model = load_model(bundle_path)
    grid = BirdNETGrid(1.0, 1.25, 48_000)
    plain = score_file(model, song, grid)
    filters = ReplayFilters(FiltersConfig(confirm=True, confirm_high_confidence=0.99),
                            DetectionConfig(threshold=THRESHOLD))
    filtered = filtered_scores(model, song, grid, filters)
    assert np.array_equal(filtered.starts, plain.starts) and np.array_equal(filtered.ends, plain.ends)
    kept = ~np.isnan(filtered.scores)  # the detections the filters kept; every other score is NaN
    assert np.array_equal(filtered.scores[kept], plain.scores[kept])
    bird = np.array([not s.non_bird for s in model.species])
    detected = (plain.scores > THRESHOLD) & bird
    assert (kept <= detected).all()
    stats = filtered.filter_stats
    assert detected.sum() - kept.sum() == stats.confirm_dropped + stats.confirm_merged > 0
