"""``birdd export-reviews`` as a subprocess over a tiny synthetic store whose detections were reviewed: the dataset
it writes is what ``birdd train`` trains on (false positives as its negative soundscapes) and what ``birdd distill
--reviews`` distils on; threshold suggestions are printed and written as a file the configuration reads."""

from __future__ import annotations

import csv
import json
import tomllib

import numpy as np
import pytest
import soundfile as sf
from test_cli_train_replay_eval import birdd
from test_distill_cli import SMALL as SMALL_DISTILL
from test_distill_cli import teacher  # noqa: F401 (a fixture: the tiny TFLite teacher over 3 corpus species)

from daemon.audio.files import read_audio
from daemon.config import StoreConfig, config_from_dict
from daemon.constants import SAMPLE_RATE
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.reviews.thresholds import Verdict, suggest
from daemon.store.review_writer import ReviewChange, ReviewWriter
from daemon.store.writer import ClipFiles, DetectionStore

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]

SMALL_TRAIN = ["--codebook-size", "16", "--set", "word2vec.vector_size=8", "--set", "word2vec.epochs=1",
               "--set", "synthesis.windows_per_recording=2", "--set", "synthesis.background_windows=10",
               "--set", "codebook_frames=4000", "--set", "kmeans_iterations=3", "--no-progress"]
CLIP_S = 7


def corpus_species(corpus) -> list[dict]:
    with (corpus / "taxonomy.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def reviewed_store(synthetic_corpus, tmp_path_factory):
    """A store of 12 detections of the corpus's first 3 species, each a 7-s clip (a corpus call over a piece of
    a corpus soundscape); 9 reviewed: per species 2 correct (confidence 0.9, 0.7) and 1 false positive (0.6)."""
    root = tmp_path_factory.mktemp("station")
    store = DetectionStore(StoreConfig(path=str(root / "detections.sqlite")))
    (root / "clips").mkdir()
    background = read_audio(sorted((synthetic_corpus / "train_soundscapes").iterdir())[0])
    species = corpus_species(synthetic_corpus)[:3]
    writer = ReviewWriter(store.path, root / "clips")
    for s, sp in enumerate(species):
        calls = sorted((synthetic_corpus / "train_audio" / sp["primary_label"]).iterdir())
        for k, (confidence, verdict) in enumerate([(0.9, "correct"), (0.7, "correct"), (0.6, "false_positive"),
                                                   (0.5, None)]):
            clip = background[(s * 4 + k) % 2 * SAMPLE_RATE:][: CLIP_S * SAMPLE_RATE].copy()
            if verdict != "false_positive":
                call = read_audio(calls[k % len(calls)])[: 4 * SAMPLE_RATE]
                clip[SAMPLE_RATE: SAMPLE_RATE + call.size] += call
            name = f"{sp['primary_label']}_{k}.flac"
            sf.write(root / "clips" / name, clip, SAMPLE_RATE)
            end = 1_800_000_000.0 + 60 * (s * 4 + k)
            detection = Detection(make_detection_id("test", "mic", 0.0, int(end * 1000), sp["primary_label"]),
                                  "test", "mic", iso_utc(end - 5), iso_utc(end), sp["primary_label"],
                                  sp["common_name"], sp["scientific_name"], confidence, {"name": "test"})
            row_id, _ = store.add(detection, ClipFiles(name, name.replace(".flac", ".png")))
            if verdict:
                writer.review(row_id, ReviewChange(verified=verdict))
    writer.close()
    # the disk policy then deletes every clip: the reviews keep theirs
    for clip in (root / "clips").iterdir():
        clip.unlink()
    store.forget_clips(r.row_id for r in store.all_clips())
    store.close()
    return root, species


def test_the_exported_dataset_trains_and_its_thresholds_configure_the_detector(reviewed_store, tmp_path):
    root, species = reviewed_store
    out = tmp_path / "reviewed"
    proc = birdd("export-reviews", "--store", root, "-o", out, "--min-reviews", "3")
    assert "6 correct and 3 false-positive clip(s), 3 species" in proc.stdout
    codes = [s["primary_label"] for s in species]
    assert f"{codes[0]}\t2\t1\t0.7\t1.0" in proc.stdout  # 0.7 keeps both correct ones and drops the 0.6 false one
    with (out / "train.csv").open() as fh:
        assert sorted(r["primary_label"] for r in csv.DictReader(fh)) == sorted(codes * 2)
    assert len(list((out / "train_soundscapes").iterdir())) == 3
    thresholds = tomllib.loads((out / "thresholds.toml").read_text())
    assert thresholds == dict.fromkeys(codes, 0.7)
    config = config_from_dict({"detection": {"species_thresholds": str(out / "thresholds.toml")}})
    assert config.detection.species_thresholds == thresholds

    model = tmp_path / "model"
    birdd("train", out, "-o", model, *SMALL_TRAIN)
    training = json.loads((model / "manifest.json").read_text())["training_data"]
    assert (training["recordings"], training["soundscapes"]) == (6, 3)  # the false positives are its negatives
    assert [s["code"] for s in json.loads((model / "manifest.json").read_text())["species"]] == codes


def test_distill_takes_the_reviewers_verdicts(reviewed_store, teacher, tmp_path):  # noqa: F811
    root, _ = reviewed_store
    out = tmp_path / "reviewed"
    birdd("export-reviews", "--store", root / "detections.sqlite", "-o", out)
    proc = birdd("distill", out, "--teacher", teacher, "-o", tmp_path / "student", "--reviews",
                 out / "reviews.csv", *SMALL_DISTILL, "--no-cache")
    assert "reviews: 9 applied to the teacher's targets" in proc.stderr
    made = json.loads((tmp_path / "student" / "manifest.json").read_text())
    assert made["distillation"]["species_selection"]["reviews"]["applied"] == 9


def test_one_line_errors(reviewed_store, tmp_path):
    root, _ = reviewed_store
    empty = tmp_path / "empty"
    DetectionStore(StoreConfig(path=str(empty / "detections.sqlite"))).close()
    for args, named in [((empty, tmp_path / "a"), "no reviewed detections"),
                        ((tmp_path / "absent", tmp_path / "b"), "no such detection store"),
                        ((root, "/proc/version/out"), "cannot write"),
                        ((root, root), "exists and is not an empty folder")]:
        proc = birdd("export-reviews", "--store", args[0], "-o", args[1], check=False)
        assert proc.returncode == 1 and named in proc.stderr, proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    bad = tmp_path / "reviews.csv"
    bad.write_text("filename,species_code,verified\nx.flac,syn01,maybe\n")
    proc = birdd("distill", tmp_path, "--teacher", tmp_path, "-o", tmp_path / "s", "--reviews", bad, check=False)
    assert proc.returncode == 1 and "reviews.csv:2: verified 'maybe'" in proc.stderr


def test_threshold_suggestions():
    def reviews(code, *pairs):
        return [Verdict(code, c, ok) for c, ok in pairs]

    got = {s.species_code: s for s in suggest(
        reviews("a", (0.95, True), (0.8, True), (0.75, False), (0.6, True), (0.55, False))
        + reviews("b", (0.9, False), (0.7, False), (0.6, False))
        + reviews("c", (0.9, True)), target_precision=0.75, min_reviews=3)}
    assert (got["a"].threshold, got["a"].precision, got["a"].kept_correct) == (0.6, 0.75, 3)
    assert (got["b"].threshold, got["b"].kept_correct) == (0.901, 0)  # all wrong: above the most confident
    assert got["c"].threshold is None and got["c"].correct == 1  # too few reviews
    strict = {s.species_code: s for s in suggest(reviews("a", (0.95, True), (0.8, True), (0.75, False),
                                                         (0.6, True), (0.55, False)), 0.9, 3)}
    assert strict["a"].threshold == 0.8
    assert np.isclose(strict["a"].precision, 1.0)
