"""A TFLite bundle loads only with the model file it was made with, and says in one line what is wrong."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from tflite_fixtures import BIRDNET_LIKE, write_tiny_bundle, write_tiny_model

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.bundle import write_bundle
from daemon.model.loader import embed_signal, load_model
from daemon.model.tflite_spec import TFLiteSpec
from daemon.model.windows import WindowGrid
from trainer.tflite_train import open_model


@pytest.fixture
def bundle(tmp_path):
    """A bundle whose model file sits in the bundle folder (and was recorded from another folder)."""
    model = write_tiny_model(tmp_path / "elsewhere.tflite", BIRDNET_LIKE.chunk_samples)
    path = write_tiny_bundle(tmp_path / "bundle", model, BIRDNET_LIKE, n_species=3)
    shutil.copy(model.path, path / BIRDNET_LIKE.model_file)
    model.path.unlink()
    return path


def rewrite_params(bundle, **changes):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["backend_params"].update(changes)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def one_line_error(bundle) -> str:
    with pytest.raises(BundleError) as caught:
        load_model(bundle)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bundle_scores_audio(bundle, rng):
    model = load_model(bundle)
    assert model.backend.name == "tflite" and model.codes == ["sp0", "sp1", "sp2"]
    samples = (0.1 * rng.standard_normal(10 * SAMPLE_RATE)).astype(np.float32)
    windows = embed_signal(model.backend, samples, WindowGrid())
    probabilities = model.head.probabilities(np.stack([w.vector for w in windows]))
    assert probabilities.shape == (2, 3) and np.all((probabilities > 0) & (probabilities < 1))


def test_missing_model_file_names_it_and_how_to_get_it(bundle):
    (bundle / BIRDNET_LIKE.model_file).unlink()
    message = one_line_error(bundle)
    assert message.startswith(f"{BIRDNET_LIKE.model_file}: TFLite model file not found")
    assert str(bundle) in message and "copy it into" in message


def test_other_model_file_is_refused(bundle):
    write_tiny_model(bundle / BIRDNET_LIKE.model_file, BIRDNET_LIKE.chunk_samples, seed=99)
    message = one_line_error(bundle)
    assert str(bundle / BIRDNET_LIKE.model_file) in message and "model_sha256" in message


def test_missing_tensor_lists_the_graph_outputs(bundle):
    spec = json.loads((bundle / "manifest.json").read_text())["backend_params"]["spec"]
    rewrite_params(bundle, spec={**spec, "embedding_tensor": "no/such/tensor"})
    message = one_line_error(bundle)
    assert "no tensor named 'no/such/tensor'" in message and "tiny/logits" in message


def test_input_length_must_match_the_spec(tmp_path):
    model = write_tiny_model(tmp_path / "short.tflite", 32_000)
    with pytest.raises(BundleError, match=r"short\.tflite: input 'INPUT' is float32 \[-1, 32000\] but spec "
                                          r"'tiny_birdnet_like' feeds float32 \[N, 144000\]"):
        open_model(BIRDNET_LIKE, model.path)


def test_bad_spec_in_manifest_names_the_field(bundle):
    spec = json.loads((bundle / "manifest.json").read_text())["backend_params"]["spec"]
    rewrite_params(bundle, spec={**spec, "chunk_offsets_s": [0.0, 3.0]})
    message = one_line_error(bundle)
    assert "backend_params.spec" in message and "chunk_offsets_s" in message


def test_not_a_tflite_file(tmp_path):
    (tmp_path / "fake.tflite").write_bytes(b"not a model at all")
    with pytest.raises(BundleError, match=r"fake\.tflite: not a TFLite model"):
        open_model(BIRDNET_LIKE, tmp_path / "fake.tflite")


def test_spec_without_a_model_path_says_what_to_do():
    spec = replace(BIRDNET_LIKE, model_file="", install_hint="give the model file with --tflite-model PATH")
    with pytest.raises(BundleError, match="--tflite-model PATH"):
        open_model(spec)


def test_logits_bundle_needs_a_logits_tensor(tmp_path):
    model = write_tiny_model(tmp_path / "m.tflite", BIRDNET_LIKE.chunk_samples)
    with pytest.raises(BundleError, match="no logits_tensor"):
        open_model(replace(BIRDNET_LIKE, logits_tensor=""), model.path, "logits")


def test_manifest_without_checksum_is_refused(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples)
    params = {"spec": BIRDNET_LIKE.to_dict(), "output": "embedding", "model_path": str(model.path)}
    arrays = {"head_mean": np.zeros(4, np.float32), "head_scale": np.ones(4, np.float32),
              "head_weights": np.zeros((4, 1), np.float32), "head_bias": np.zeros(1, np.float32)}
    path = write_bundle(tmp_path / "b", {"backend": "tflite", "backend_params": params, "sample_rate": 32000,
                                         "window_seconds": 5,
                                         "species": [{"code": "a", "common_name": "A"}]}, arrays)
    assert "backend_params.model_sha256" in one_line_error(path)


def test_spec_round_trips_through_the_manifest():
    assert TFLiteSpec.from_dict(json.loads(json.dumps(BIRDNET_LIKE.to_dict())), "x") == BIRDNET_LIKE
