"""Zero-shot bundles: the model's own classes mapped onto the taxonomy; probability = sigmoid(model logit)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soxr
from tflite_fixtures import BIRDNET_LIKE, write_tiny_model

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.loader import Species, embed_signal, load_model
from daemon.model.windows import WindowGrid
from trainer.tflite_zero_shot import UNMATCHED_LOGIT, ModelLabel, match_species, read_labels, zero_shot_bundle

LABELS = ["Turdus migratorius_American Robin", "Toxostoma lecontei_LeConte's Thrasher",
          "Passerella iliaca_Fox Sparrow"]


def test_names_match_across_spelling_and_subspecies():
    labels = [ModelLabel(scientific_name=s, common_name=c) for s, _, c in (x.partition("_") for x in LABELS)]
    labels.append(ModelLabel(code="norcar"))
    species = [Species("amerob", "american robin"), Species("lethr", "Le Conte's Thrasher"),
               Species("foxred", "Fox Sparrow (Red)"), Species("x", "Unknown Bird", "Turdus migratorius"),
               Species("norcar", "Cardinal"), Species("nope", "Dodo")]
    matches, by = match_species(labels, species)
    assert matches == [0, 1, 2, 0, 3, None]
    assert by == {"common_name": 3, "scientific_name": 1, "code": 1}


def test_code_labels_skip_header_lines(tmp_path):
    path = tmp_path / "label.csv"
    path.write_text("ebird2021\namerob\nnorcar\n")
    spec = replace(BIRDNET_LIKE, labels_format="code", labels_header_lines=1)
    assert read_labels(path, spec) == [ModelLabel(code="amerob"), ModelLabel(code="norcar")]


@pytest.fixture
def dataset_with_model(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, n_logits=3)
    (tmp_path / BIRDNET_LIKE.labels_file).write_text("\n".join(LABELS) + "\n")
    (tmp_path / "taxonomy.csv").write_text("primary_label,common_name\nfoxsp,Fox Sparrow\ndodo,Dodo\n"
                                           "amerob,American Robin\n")
    return tmp_path, model


def test_zero_shot_bundle_gives_the_models_own_confidence(dataset_with_model, rng):
    root, model = dataset_with_model
    bundle = zero_shot_bundle(root, root / "zs", model.path, BIRDNET_LIKE)
    loaded = load_model(bundle)
    assert loaded.manifest["zero_shot"]["unmatched"] == ["dodo"]
    samples = (0.02 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    (window,) = embed_signal(loaded.backend, samples, WindowGrid())
    probabilities = loaded.head.probabilities(window.vector[None, :])[0]
    at_rate = soxr.resample(samples, SAMPLE_RATE, 48_000, quality="HQ")
    logits = np.mean([model.logits(at_rate[o: o + 144_000].astype(np.float64)) for o in (0, 96_000)], axis=0)
    expected = 1 / (1 + np.exp(-np.array([logits[2], UNMATCHED_LOGIT, logits[0]])))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-3, atol=1e-6)


def test_label_count_must_match_the_logits(dataset_with_model):
    root, model = dataset_with_model
    (root / BIRDNET_LIKE.labels_file).write_text("\n".join(LABELS[:2]) + "\n")
    with pytest.raises(BundleError, match="2 labels but tensor 'tiny/logits' has 3 classes"):
        zero_shot_bundle(root, root / "zs", model.path, BIRDNET_LIKE)
