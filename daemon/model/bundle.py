"""Model bundles on disk: a directory of plain ``.npy`` arrays plus ``manifest.json`` with checksums.

No pickles: arrays are loaded with ``allow_pickle=False``. Loading checks the format name and
version and the sha256 of every file, and refuses a tampered or incompatible bundle with a
:class:`BundleError` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from daemon import __version__
from daemon.atomic import fsync_directory
from daemon.errors import BundleError

FORMAT_NAME = "birdd-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ManifestParams:
    """Mixin for frozen parameter dataclasses that travel in the manifest as JSON objects."""

    def to_dict(self) -> dict:
        """JSON-ready parameters."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):  # -> the dataclass itself
        """Parameters from a manifest; unknown or missing keys raise BundleError."""
        try:
            return cls(**data)
        except TypeError as exc:
            raise BundleError(f"{cls.__name__}: {exc}") from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(directory: str | Path, manifest: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (name -> array, saved as ``<name>.npy``) and the manifest, atomically.

    The bundle is assembled (and fsynced) in a temporary sibling directory and renamed into place, so
    a reader (or a SIGHUP reload) never sees a half-written bundle: at worst, during the swap, no
    bundle, which a reload reports while the old model keeps running.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        files = {}
        for name, array in arrays.items():
            if array.dtype == object:
                raise BundleError(f"{name}: object arrays cannot be stored without pickle")
            path = staging / f"{name}.npy"
            np.save(path, array, allow_pickle=False)
            files[path.name] = {"sha256": sha256_file(path), "shape": list(array.shape), "dtype": str(array.dtype)}
        body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "package_version": __version__,
                **manifest, "files": files}
        (staging / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
        for path in staging.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        if directory.exists():  # two renames: a reader in between finds no bundle and keeps its old model
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
        fsync_directory(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_bundle(directory: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Load and verify a bundle: returns ``(manifest, arrays by name)``."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: no model manifest (is {directory} a model made by `birdd train`?)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{manifest_path}: not a {FORMAT_NAME} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: format_version {manifest.get('format_version')!r} is not supported "
                          f"(this birdd reads version {FORMAT_VERSION}); retrain or upgrade birdd")
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(meta, dict) for meta in files.values()):
        raise BundleError(f"{manifest_path}: 'files' must map each array file to its sha256")
    arrays = {}
    for filename, meta in files.items():
        if Path(filename).name != filename or not filename.endswith(".npy") or "\x00" in filename:
            raise BundleError(f"{manifest_path}: {filename!r} is not the name of an .npy file in the bundle")
        path = directory / filename
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != meta.get("sha256"):
            raise BundleError(f"{path}: sha256 does not match the manifest (file changed or corrupted)")
        try:
            arrays[filename.removesuffix(".npy")] = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise BundleError(f"{path}: not a plain numpy array ({exc})") from None
    return manifest, arrays


def manifest_digest(directory: str | Path) -> str:
    """Short sha256 of the manifest: identifies a model version in detections and logs."""
    return sha256_file(Path(directory) / MANIFEST)[:12]
