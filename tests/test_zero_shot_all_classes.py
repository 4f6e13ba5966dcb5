"""A zero-shot bundle over every class of a model: codes, non-bird classes, a selection head, never detected."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_fixtures import BIRDNET_LIKE, write_tiny_model

from daemon.batch.formats import FileScores, detection_rows
from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.head import SelectionHead
from daemon.model.labels import ModelLabel
from daemon.model.loader import embed_signal, load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.policy import DetectionPolicy
from trainer.tflite_zero_shot import all_classes_bundle, class_species, slug

LABELS = ["Turdus migratorius_American Robin", "Human vocal_Human vocal", "Turdus merula_Eurasian Blackbird",
          "Siren_Siren"]


@pytest.fixture
def tiny_model(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, n_logits=len(LABELS))
    (tmp_path / BIRDNET_LIKE.labels_file).write_text("\n".join(LABELS) + "\n")
    return model


def test_codes_are_taxonomy_codes_else_slugs_and_one_name_classes_are_non_bird(tmp_path, tiny_model):
    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text("primary_label,common_name,scientific_name\namerob,American Robin,Turdus migratorius\n")
    bundle = load_model(all_classes_bundle(tmp_path / "all", tiny_model.path, BIRDNET_LIKE, taxonomy))
    assert [(s.code, s.common_name, s.non_bird) for s in bundle.species] == [
        ("amerob", "American Robin", False), ("human_vocal", "Human vocal", True),
        ("turdus_merula", "Eurasian Blackbird", False), ("siren", "Siren", True)]
    assert bundle.manifest["zero_shot"]["coded_by_taxonomy"] == 1
    assert isinstance(bundle.head, SelectionHead)


def test_probabilities_are_the_models_own_sigmoid(tmp_path, tiny_model, rng):
    bundle = load_model(all_classes_bundle(tmp_path / "all", tiny_model.path, BIRDNET_LIKE))
    samples = (0.05 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    (window,) = embed_signal(bundle.backend, samples, WindowGrid())
    expected = 1 / (1 + np.exp(-window.vector.astype(np.float64)))
    np.testing.assert_allclose(bundle.head.probabilities(window.vector[None, :])[0], expected, rtol=1e-5)


def test_non_bird_classes_are_never_detections(tmp_path, tiny_model):
    species = load_model(all_classes_bundle(tmp_path / "all", tiny_model.path, BIRDNET_LIKE)).species
    scores = np.array([0.6, 0.99, 0.2, 0.95], dtype=np.float32)
    assert DetectionPolicy(DetectionConfig(threshold=0.1), species).select(scores) == [
        (0, pytest.approx(0.6)), (2, pytest.approx(0.2))]
    table = detection_rows(FileScores(tmp_path / "a.wav", np.array([0]), np.array([5 * SAMPLE_RATE]),
                                      scores[None, :]), species, 0.1)
    assert [line.split(",")[3] for line in table.splitlines()] == ["turdus_migratorius", "turdus_merula"]


def test_slug_is_stable_and_two_classes_may_not_share_a_code():
    assert slug("Turdus migratorius") == "turdus_migratorius"
    assert slug("Human non-vocal") == "human_non_vocal"
    twins = [ModelLabel(scientific_name="Aa bb", common_name="X"), ModelLabel(scientific_name="Aa-bb", common_name="Y")]
    with pytest.raises(BundleError, match="two model classes get the species code 'aa_bb'"):
        class_species(twins)


def test_selection_head_scores_unmatched_species_by_their_bias():
    head = SelectionHead(np.array([2, -1, 0]), np.array([0.0, -20.0, 0.0], dtype=np.float32))
    logits = head.logits(np.array([[1.0, 5.0, -3.0]], dtype=np.float32))
    np.testing.assert_allclose(logits, [[-3.0, -20.0, 1.0]])
    with pytest.raises(BundleError, match="at least 3 classes"):
        head.logits(np.zeros((1, 2), np.float32))
