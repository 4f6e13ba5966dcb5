"""Tiny TFLite models written from numpy weights (no TensorFlow), and specs and bundles around them.

The model is ``embedding = W1 @ chunk + b1`` then ``logits = W2 @ embedding + b2`` (two FULLY_CONNECTED
ops), with only ``logits`` a graph output, like BirdNET: reading ``embedding`` needs the output re-pointing
that birdd does. Being linear, its window vectors can be computed with numpy to check chunk placement.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from daemon.model.bundle import write_bundle
from daemon.model.loader import Species
from daemon.model.tflite_spec import TFLiteSpec
from trainer.tflite_train import bundle_manifest, open_model

EMBEDDING = "tiny/embedding"
LOGITS = "tiny/logits"

BIRDNET_LIKE = TFLiteSpec(name="tiny_birdnet_like", sample_rate=48_000, chunk_seconds=3.0,
                          chunk_offsets_s=(0.0, 2.0), embedding_tensor=EMBEDDING, logits_tensor=LOGITS,
                          model_file="tiny.tflite", labels_file="tiny_labels.txt")
"""48 kHz, 3-s chunks at 0 and 2 s of each window: the BirdNET geometry."""

PERCH_LIKE = replace(BIRDNET_LIKE, name="tiny_perch_like", sample_rate=32_000, chunk_seconds=5.0,
                     chunk_offsets_s=(0.0,))
"""32 kHz, one 5-s chunk per window: no resampling."""


@dataclass(frozen=True)
class TinyModel:
    """A written tiny model and its weights."""

    path: Path
    w1: np.ndarray  # (dim, chunk)
    b1: np.ndarray
    w2: np.ndarray  # (n_logits, dim)
    b2: np.ndarray

    def embedding(self, chunk: np.ndarray) -> np.ndarray:
        """What the model computes for one chunk (float64)."""
        return self.w1.astype(np.float64) @ chunk + self.b1

    def logits(self, chunk: np.ndarray) -> np.ndarray:
        """The model's logits for one chunk (float64)."""
        return self.w2.astype(np.float64) @ self.embedding(chunk) + self.b2


def _tensor(name: str, shape: list[int], buffer: int, dynamic_batch: bool) -> schema.TensorT:
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name, shape, schema.TensorType.FLOAT32, buffer
    tensor.shapeSignature = [-1, *shape[1:]] if dynamic_batch and len(shape) == 2 and buffer == 0 else shape
    return tensor


def _buffer(array: np.ndarray | None) -> schema.BufferT:
    buffer = schema.BufferT()
    if array is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(array, dtype=np.float32).tobytes(), dtype=np.uint8)
    return buffer


def _fully_connected(inputs: list[int], output: int) -> schema.OperatorT:
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, inputs, [output]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    return op


def write_tiny_model(path: Path, chunk_samples: int, *, dim: int = 4, n_logits: int = 3, seed: int = 0,
                     dynamic_batch: bool = True) -> TinyModel:
    """Write ``chunk (1, chunk_samples) -> embedding (1, dim) -> logits (1, n_logits)`` to ``path``."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((dim, chunk_samples)) / np.sqrt(chunk_samples)).astype(np.float32)
    b1 = rng.standard_normal(dim).astype(np.float32)
    w2 = rng.standard_normal((n_logits, dim)).astype(np.float32)
    b2 = rng.standard_normal(n_logits).astype(np.float32)
    # tensors: 0 input, 1 W1, 2 b1, 3 embedding, 4 W2, 5 b2, 6 logits; buffer 0 is the empty sentinel
    specs = [("INPUT", [1, chunk_samples], None), ("tiny/w1", [dim, chunk_samples], w1), ("tiny/b1", [dim], b1),
             (EMBEDDING, [1, dim], None), ("tiny/w2", [n_logits, dim], w2), ("tiny/b2", [n_logits], b2),
             (LOGITS, [1, n_logits], None)]
    buffers = [_buffer(None)]
    tensors = []
    for name, shape, array in specs:
        index = 0
        if array is not None:
            buffers.append(_buffer(array))
            index = len(buffers) - 1
        tensors.append(_tensor(name, shape, index, dynamic_batch))
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.inputs, subgraph.outputs = tensors, [0], [6]
    subgraph.operators = [_fully_connected([0, 1, 2], 3), _fully_connected([3, 4, 5], 6)]
    subgraph.name = "main"
    opcode = schema.OperatorCodeT()
    opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    opcode.version = 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [opcode], [subgraph], buffers
    model.description = "birdd test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return TinyModel(path, w1, b1, w2, b2)


def write_tiny_bundle(bundle_dir: Path, model: TinyModel, spec: TFLiteSpec, *, n_species: int = 2,
                      output: str = "embedding", seed: int = 0) -> Path:
    """A bundle on ``model`` with a random head over ``n_species`` made-up species."""
    backend = open_model(spec, model.path, output)
    rng = np.random.default_rng(seed)
    arrays = {"head_mean": np.zeros(backend.dim, np.float32), "head_scale": np.ones(backend.dim, np.float32),
              "head_weights": rng.standard_normal((backend.dim, n_species)).astype(np.float32),
              "head_bias": np.zeros(n_species, np.float32)}
    species = [Species(f"sp{i}", f"Species {i}") for i in range(n_species)]
    return write_bundle(bundle_dir, bundle_manifest(bundle_dir, backend, species), arrays)
