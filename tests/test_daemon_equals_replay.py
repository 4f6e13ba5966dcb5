"""Streaming equals batch: the daemon's detections on files are replay's, window for window."""

import json
import sqlite3
from datetime import datetime

import numpy as np
import pytest
from daemon_process import Daemon, write_config
from test_distill_cli import teacher  # noqa: F401  (a fixture: a zero-shot bundle on the tiny model)

from daemon.batch.replay import score_file
from daemon.batch.segments import Segment, score_segment
from daemon.config import DetectionConfig
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.cascade import CascadeTeacher, teacher_columns
from daemon.pipeline.policy import DetectionPolicy

pytestmark = pytest.mark.integration


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def daemon_payloads(files, model_path, tmp_path, **tables) -> list[dict]:
    """The detections a daemon run over ``files`` published (threshold 0: every species of every window)."""
    outbox = tmp_path / "outbox.sqlite"
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "t"},
        "audio": {"source": "file", "files": [str(f) for f in files], "realtime": False},
        "model": {"path": str(model_path)},
        "detection": {"threshold": 0.0},
        "mqtt": {"enabled": False},
        "outbox": {"path": str(outbox)},
        **tables,
    })
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(60) == 0, daemon.log.read_text()
    finally:
        daemon.close()
    with sqlite3.connect(outbox) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]


def test_daemon_detections_equal_replay(trained_model, synthetic_corpus, tmp_path):
    files = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    payloads = daemon_payloads(files, trained_model, tmp_path)
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


@pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")
def test_a_daemon_cascade_equals_replays(trained_model, teacher, synthetic_corpus, tmp_path):  # noqa: F811
    """With [cascade], the daemon's detections are replay's cascade's; those the teacher scored name it."""
    files = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    model, tutor = load_model(trained_model), load_model(teacher)
    threshold = float(np.median(np.concatenate([score_file(model, p, WindowGrid()).scores.max(axis=1) for p in files])))
    payloads = daemon_payloads(files, trained_model, tmp_path,
                               cascade={"teacher": str(teacher), "screen_threshold": threshold})
    policy = DetectionPolicy(DetectionConfig(threshold=0.0), model.species)
    cascade = CascadeTeacher(tutor, threshold)
    known = teacher_columns(tutor, model.species) >= 0
    names = {model.identity["version"]: "student", tutor.identity["version"]: "teacher"}
    for path in files:
        mine = [p for p in payloads if p["source"] == str(path)]
        origin = min(seconds(p["start"]) for p in mine)
        got = [(round(seconds(p["end"]) - origin), p["species_code"], p["confidence"], names[p["model"]["version"]])
               for p in mine]
        result = score_segment(model, Segment(path, 0, None), WindowGrid(), cascade)
        expected = [(int(end) // 32000, model.species[j].code, round(c, 4),
                     "teacher" if best >= threshold and known[j] else "student")
                    for end, scores, best in zip(result.ends, result.scores, score_file(model, path, WindowGrid())
                                                 .scores.max(axis=1), strict=True)
                    for j, c in policy.select(scores)]
        assert got == expected
    assert {"student", "teacher"} <= {names[p["model"]["version"]] for p in payloads}
