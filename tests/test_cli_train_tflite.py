"""``birdd train --backend tflite`` as a subprocess, on a tiny numpy-built TFLite model: head, zero-shot, errors."""

from __future__ import annotations

import csv
import json

import pytest
from test_cli_train_replay_eval import birdd
from tflite_fixtures import PERCH_LIKE, write_tiny_model

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]


@pytest.fixture
def tiny(tmp_path, synthetic_corpus):
    """The tiny model, its spec as a JSON file, and a labels file naming 3 of the corpus's species."""
    model = write_tiny_model(tmp_path / "tiny.tflite", PERCH_LIKE.chunk_samples, dim=8, n_logits=3)
    spec = tmp_path / "tiny_spec.json"
    spec.write_text(json.dumps(PERCH_LIKE.to_dict()))
    with (synthetic_corpus / "taxonomy.csv").open() as fh:
        species = list(csv.DictReader(fh))[:3]
    (tmp_path / PERCH_LIKE.labels_file).write_text(
        "".join(f"{s['scientific_name']}_{s['common_name']}\n" for s in species))
    return model.path, spec


def test_head_on_embeddings_then_cache(tiny, synthetic_corpus, tmp_path):
    model, spec = tiny
    common = ["train", synthetic_corpus, "--backend", "tflite", "--tflite-model", model, "--tflite-spec", spec,
              "--cache-dir", tmp_path / "cache", "--no-progress"]
    first = birdd(*common, "-o", tmp_path / "head")
    assert "peak memory (RSS)" in first.stderr
    info = birdd("info", tmp_path / "head").stdout
    assert "tflite" in info and "species  6" in info
    assert "model_invocations: 0" not in info
    second = birdd(*common, "-o", tmp_path / "again")
    assert " 0 misses" in second.stderr and "training model_invocations: 0" in birdd("info", tmp_path / "again").stdout


def test_zero_shot_maps_the_model_classes(tiny, synthetic_corpus, tmp_path):
    model, spec = tiny
    birdd("train", synthetic_corpus, "--backend", "tflite", "--tflite-model", model, "--tflite-spec", spec,
          "--zero-shot", "-o", tmp_path / "zero")
    manifest = json.loads((tmp_path / "zero" / "manifest.json").read_text())
    assert sum(manifest["zero_shot"]["matched"].values()) == 3
    assert len(manifest["zero_shot"]["unmatched"]) == 3


def test_options_of_the_other_backend_are_refused(synthetic_corpus, tmp_path):
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--zero-shot", check=False)
    assert proc.returncode == 2 and "--zero-shot does not apply to --backend stsg" in proc.stderr
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--backend", "tflite", "--pooling", "tfidf",
                 check=False)
    assert proc.returncode == 2 and "--pooling does not apply to --backend tflite" in proc.stderr
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--backend", "tflite", "--tflite-model",
                 tmp_path / "missing.tflite", check=False)
    assert proc.returncode == 1 and "missing.tflite: no such TFLite model file" in proc.stderr
    assert not (tmp_path / "m").exists()
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--set", "word2vec.windw=3", check=False)
    assert proc.returncode == 2 and "word2vec.windw: no such recipe setting" in proc.stderr
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--set", "pooling=tfidf,bogus", check=False)
    assert proc.returncode == 2 and "feature blocks bogus: choose from" in proc.stderr
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--tflite-spec", "perch_style", check=False)
    assert proc.returncode == 2 and "--tflite-spec does not apply to --backend stsg" in proc.stderr
    proc = birdd("train", synthetic_corpus, "-o", tmp_path / "m", "--backend", "tflite", "--cache-dir", tmp_path,
                 "--no-cache", check=False)
    assert proc.returncode == 2 and "--cache-dir and --no-cache contradict each other" in proc.stderr
