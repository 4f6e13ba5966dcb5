"""Streaming equals batch: the daemon's detections on files are replay's, window for window."""

import json
import sqlite3
from datetime import datetime

import pytest
from daemon_process import Daemon, write_config

from daemon.batch.replay import score_file
from daemon.config import DetectionConfig
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.policy import DetectionPolicy

pytestmark = pytest.mark.integration


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_daemon_detections_equal_replay(trained_model, synthetic_corpus, tmp_path):
    files = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    outbox = tmp_path / "outbox.sqlite"
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "t"},
        "audio": {"source": "file", "files": [str(f) for f in files], "realtime": False},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.0},
        "mqtt": {"enabled": False},
        "outbox": {"path": str(outbox)},
    })
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(60) == 0, daemon.log.read_text()
    finally:
        daemon.close()
    with sqlite3.connect(outbox) as db:
        payloads = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]
    model = load_model(trained_model)
    policy = DetectionPolicy(DetectionConfig(threshold=0.0), model.species)
    for path in files:
        mine = [p for p in payloads if p["source"] == str(path)]
        origin = min(seconds(p["start"]) for p in mine)  # threshold 0: every window reports every species
        got = [(round(seconds(p["end"]) - origin), p["species_code"], p["confidence"]) for p in mine]
        result = score_file(model, path, WindowGrid())
        expected = [(int(end) // 32000, model.species[j].code, round(c, 4))
                    for end, scores in zip(result.ends, result.scores, strict=True) for j, c in policy.select(scores)]
        assert got == expected
    assert len({p["detection_id"] for p in payloads}) == len(payloads)
