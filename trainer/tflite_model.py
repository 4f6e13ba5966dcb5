"""A pretrained TFLite model opened for training, and the manifest of a bundle made on it.

Kept apart from :mod:`trainer.tflite_train` so that zero-shot bundles need neither the training data
code nor the training extra's libraries (faiss, gensim, scikit-learn): ``pip install 'birdd[birdnet]'``
is enough to make one.
"""

from __future__ import annotations

from pathlib import Path

from daemon.errors import BundleError
from daemon.model.loader import Species, build_manifest
from daemon.model.tflite_backend import NAME as TFLITE
from daemon.model.tflite_backend import TFLiteBackend
from daemon.model.tflite_runtime import ModelFile, locate_model_file
from daemon.model.tflite_spec import TFLiteSpec, load_spec

DEFAULT_SPEC = "birdnet_v2.4"


def open_model(spec: TFLiteSpec | str, model_path: str | Path | None = None, output: str = "embedding",
               threads: int = 1) -> TFLiteBackend:
    """The TFLite backend for ``spec`` (a spec or a spec name/file), on ``model_path`` or the spec's installed file."""
    spec = spec if isinstance(spec, TFLiteSpec) else load_spec(spec)
    if model_path is not None and not Path(model_path).is_file():
        raise BundleError(f"{model_path}: no such TFLite model file")
    path = Path(model_path) if model_path is not None else locate_model_file(spec)
    return TFLiteBackend.open(ModelFile.read(path), spec, output, threads)


def bundle_manifest(out_dir: str | Path, backend: TFLiteBackend, species: list[Species], **sections: object) -> dict:
    """The manifest of a TFLite bundle (the arrays' checksums are added by ``write_bundle``)."""
    return build_manifest(Path(out_dir).name, TFLITE, backend.params(), species, **sections)
