"""A TFLite model file for birdd: find it, check it against the bundle, run it one chunk at a time.

The interpreter comes from ``ai-edge-litert`` (XNNPACK on CPU), or from ``tflite_runtime`` when only
that is installed. Every failure is a one-line :class:`BundleError` naming the file: missing model
(with how to get it), wrong checksum, input shape that does not match the spec, no such tensor.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import BundleError
from daemon.model.tflite_graph import GraphFormatError, GraphInfo, TensorInfo, read_graph, with_outputs
from daemon.model.tflite_spec import TFLiteSpec

log = logging.getLogger(__name__)

RUNTIME_HINT = "pip install 'birdd[tflite]'"


def interpreter_class() -> type:
    """The TFLite ``Interpreter`` class: ai-edge-litert's, else tflite_runtime's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BundleError(f"no TFLite runtime is installed: {RUNTIME_HINT} (ai-edge-litert)") from None
    return Interpreter


def package_folder(spec: TFLiteSpec) -> Path | None:
    """Where ``spec.package`` keeps its model files, if the package is installed (it is not imported)."""
    if not spec.package:
        return None
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / spec.package_dir


def locate_model_file(spec: TFLiteSpec, bundle_dir: Path | None = None, recorded_path: str = "") -> Path:
    """The model file: in the bundle folder, in the spec's package, or at the path recorded at training."""
    places: list[Path] = []
    if spec.model_file:
        if bundle_dir is not None:
            places.append(bundle_dir / spec.model_file)
        folder = package_folder(spec)
        if folder is not None:
            places.append(folder / spec.model_file)
    if recorded_path:
        places.append(Path(recorded_path))
    for place in places:
        if place.is_file():
            return place
    name = spec.model_file or (Path(recorded_path).name if recorded_path else f"the {spec.name} model")
    looked = ", ".join(str(p.parent) for p in places) or "nowhere: the spec names no file and no path was given"
    hints = [spec.install_hint] if spec.install_hint else []
    if bundle_dir is not None and spec.model_file:
        hints.append(f"copy it into {bundle_dir}")
    raise BundleError(f"{name}: TFLite model file not found (looked in {looked}); "
                      f"{', or '.join(hints) or 'give its path'}")


def labels_path(spec: TFLiteSpec, model_path: Path) -> Path:
    """The class-names file of a model: next to the model file, else in the spec's package."""
    if not spec.labels_file:
        raise BundleError(f"TFLite spec {spec.name!r}: no labels_file, so its classes have no names")
    places = [model_path.parent / spec.labels_file]
    folder = package_folder(spec)
    if folder is not None:
        places.append(folder / spec.labels_file)
    for place in places:
        if place.is_file():
            return place
    raise BundleError(f"{spec.labels_file}: labels file not found (looked in "
                      f"{', '.join(str(p.parent) for p in places)})")


@dataclass(frozen=True)
class ModelFile:
    """A TFLite model read from disk: its bytes, their sha256 and its main graph."""

    path: Path
    content: bytes
    sha256: str
    graph: GraphInfo

    @classmethod
    def read(cls, path: str | Path) -> ModelFile:
        """Read and parse ``path``."""
        path = Path(path)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{path}: cannot read the TFLite model ({exc.strerror or exc})") from None
        try:
            graph = read_graph(content)
        except GraphFormatError as exc:
            raise BundleError(f"{path}: {exc}") from None
        return cls(path, content, hashlib.sha256(content).hexdigest(), graph)

    def check_sha256(self, expected: str) -> None:
        """Refuse a model file other than the one a bundle was made with."""
        if self.sha256 != expected:
            raise BundleError(f"{self.path}: sha256 {self.sha256[:16]}... is not the bundle's model_sha256 "
                              f"{expected[:16]}... (a different model file; restore the original or retrain)")

    def input_tensor(self, spec: TFLiteSpec) -> TensorInfo:
        """The model's only input, checked against the spec's chunk length."""
        if len(self.graph.inputs) != 1:
            raise BundleError(f"{self.path}: the model has {len(self.graph.inputs)} inputs, birdd feeds one")
        tensor = self.graph.tensors[self.graph.inputs[0]]
        dims = tensor.shape_signature
        if tensor.dtype != "float32" or not dims or dims[-1] != spec.chunk_samples or any(d not in (1, -1)
                                                                                          for d in dims[:-1]):
            raise BundleError(f"{self.path}: input {tensor.name!r} is {tensor.dtype} {list(dims)} but spec "
                              f"{spec.name!r} feeds float32 [N, {spec.chunk_samples}] ({spec.chunk_seconds:g} s "
                              f"at {spec.sample_rate} Hz)")
        return tensor

    def output_tensor(self, name: str, spec: TFLiteSpec, role: str) -> TensorInfo:
        """The tensor called ``name``: one float vector per chunk (shape ``[N, D]``)."""
        tensor = self.graph.by_name(name) if name else None
        if tensor is None:
            outputs = [f"{t.name!r} {list(t.shape_signature)}" for t in map(self.graph.tensors.__getitem__,
                                                                            self.graph.outputs)]
            raise BundleError(f"{self.path}: no tensor named {name!r} (spec {spec.name!r}, {role}); "
                              f"the graph outputs are {', '.join(outputs)}")
        dims = tensor.shape_signature
        if tensor.dtype != "float32" or len(dims) < 1 or dims[-1] < 1 or any(d not in (1, -1) for d in dims[:-1]):
            raise BundleError(f"{self.path}: tensor {name!r} ({role}) is {tensor.dtype} {list(dims)}, "
                              "not one float vector per chunk ([N, D])")
        return tensor


class ChunkEmbedder:
    """Runs the model on one chunk and returns one tensor of it as a vector: ``chunk (L,) -> (D,)``.

    The tensor is made a graph output (see :func:`daemon.tflite_graph.with_outputs`), so it can be an
    intermediate one such as an embedding layer. One chunk per invoke: batching chunks with
    ``resize_tensor_input`` gave no speed-up for BirdNET on this project's 2-core machine (see
    docs/tflite.md). Calls are serialised by a lock; ``invocations`` counts them.
    """

    def __init__(self, model: ModelFile, spec: TFLiteSpec, tensor_name: str, role: str, threads: int = 1) -> None:
        self.path = model.path
        self._input = model.input_tensor(spec)
        self._output = model.output_tensor(tensor_name, spec, role)
        self.dim = self._output.shape_signature[-1]
        self._content = with_outputs(model.content, [self._output.index])  # kept alive for the interpreter
        interpreter = interpreter_class()
        try:
            self._interpreter = interpreter(model_content=self._content, num_threads=threads)
            shape = [1] * (len(self._input.shape) - 1) + [spec.chunk_samples]
            if list(self._input.shape) != shape:
                self._interpreter.resize_tensor_input(self._input.index, shape)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{self.path}: TFLite cannot run the model ({str(exc).strip()[:200]})") from None
        self._shape = shape
        self._lock = threading.Lock()
        self.invocations = 0
        log.debug("TFLite %s: tensor %r (%d-d) of %s, %d thread(s)", role, tensor_name, self.dim, self.path, threads)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """The tensor's values for one chunk of ``spec.chunk_samples`` samples, float32 ``(D,)``."""
        with self._lock:
            self._interpreter.set_tensor(self._input.index, chunk.astype(np.float32, copy=False).reshape(self._shape))
            self._interpreter.invoke()
            self.invocations += 1
            return self._interpreter.get_tensor(self._output.index).reshape(-1)
