"""The all-classes BirdNET bundle on a real bench206 soundscape: BirdNET's names; eval says the columns differ."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import BundleError
from daemon.model.tflite_runtime import locate_model_file
from daemon.model.tflite_spec import load_spec

BENCH = Path(os.environ.get("BENCH206", Path(__file__).resolve().parents[2] / "shared" / "bench206"))
"""``../shared/bench206`` beside the project (or $BENCH206, e.g. from a git worktree)"""
SOUNDSCAPE = "te_12_0002"  # eight species, four of them heard by BirdNET at 0.2

pytestmark = [pytest.mark.integration, pytest.mark.bench206,
              pytest.mark.skipif(not BENCH.is_dir(), reason=f"{BENCH} is absent")]


def birdd(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("birdd")), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def all_classes(tmp_path_factory) -> Path:
    try:
        locate_model_file(load_spec("birdnet_v2.4"))
    except BundleError as exc:
        pytest.skip(f"BirdNET model not installed: {exc}")
    bundle = tmp_path_factory.mktemp("zs") / "birdnet_all"
    proc = birdd("train", "--backend", "tflite", "--zero-shot", "-o", bundle)
    assert proc.returncode == 0, proc.stderr
    return bundle


def test_detection_table_uses_birdnet_names(all_classes, tmp_path):
    table = tmp_path / "detections.csv"
    proc = birdd("replay", BENCH / "test_soundscapes" / f"{SOUNDSCAPE}.ogg", "-m", all_classes, "-o", table,
                 "--format", "detections", "--min-conf", "0.2", "-j", "1")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(table.open()))
    labels = Path(load_spec("birdnet_v2.4").labels_file)
    birdnet = dict(line.split("_", 1)[::-1] for line in (locate_model_file(load_spec("birdnet_v2.4")).parent
                                                         / labels).read_text().splitlines())
    assert rows and all(r["species_code"] == birdnet[r["common_name"]].lower().replace(" ", "_") for r in rows)
    taxonomy = {r["primary_label"]: r["common_name"] for r in csv.DictReader((BENCH / "taxonomy.csv").open())}
    placed = {taxonomy[e["species"]] for e in json.loads((BENCH / "test_soundscapes_events.json").read_text())[
        SOUNDSCAPE]}
    assert len(placed & {r["common_name"] for r in rows}) >= 3


def test_eval_against_bench206_labels_says_the_columns_differ(all_classes, tmp_path):
    submission = tmp_path / "submission.csv"
    assert birdd("replay", BENCH / "test_soundscapes" / f"{SOUNDSCAPE}.ogg", "-m", all_classes, "-o", submission,
                 "-j", "1").returncode == 0
    proc = birdd("eval", submission, BENCH / "test_soundscapes_labels.csv")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("birdd: error: the species columns differ (6522 in ")
    assert "206 in " in proc.stderr and "0 shared" in proc.stderr
