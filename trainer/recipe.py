"""Every training knob in one frozen object; it is recorded in the bundle manifest."""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace

from daemon.errors import BirddError
from daemon.model.features import FrontEndParams
from daemon.model.tokenizer import TokenizerParams


@dataclass(frozen=True)
class Word2VecParams:
    """gensim skip-gram settings for the token embeddings."""

    vector_size: int = 64
    window: int = 10
    """context half-width (tokens): 100 ms either side at a 10 ms hop, about one syllable"""
    negative: int = 5
    ns_exponent: float = -0.5
    """negative-sampling distribution exponent; negative samples rare tokens more (bird tokens are rare)"""
    epochs: int = 5
    min_count: int = 1
    sample: float = 1e-3
    """down-sampling of very frequent tokens (e.g. background frames)"""


@dataclass(frozen=True)
class SynthesisParams:
    """How labelled 5-s training windows are made from focal clips and unlabelled soundscapes."""

    windows_per_recording: int = 12
    """labelled windows mixed per focal recording"""
    extra_call_probability: tuple[float, ...] = (0.4, 0.15)
    """chance of a 2nd, 3rd, ... call (a random other recording, also labelled) in a labelled window"""
    background_windows: int = 3000
    """windows of background alone (all labels 0)"""
    snr_db: tuple[float, float] = (-5.0, 20.0)
    """range of call-to-background level (decibels, uniform)"""


HEAD_LOSSES = ("logistic", "squares")


@dataclass(frozen=True)
class HeadParams:
    """The multi-label linear head (one sigmoid per species)."""

    loss: str = "logistic"
    """"logistic": cross-entropy by L-BFGS; "squares": least squares on the targets (closed form), then each
    species' output calibrated to a probability (Platt scaling)"""
    l2: float = 1e-2
    """L2 penalty on the weights (per training window)"""
    max_iter: int = 300
    """L-BFGS iterations (logistic)"""
    logit_floor: float = 0.0
    """"squares": below 0, fit the targets' logits raised to at least this (the long tail where a soft
    target says nothing cut off) instead of the targets themselves; 0: the targets ("logistic" ignores it)"""

    def __post_init__(self) -> None:
        if self.loss not in HEAD_LOSSES:
            raise ValueError(f"{self.loss!r} is not one of {', '.join(HEAD_LOSSES)}")
        if self.logit_floor > 0:
            raise ValueError("must be 0 (off) or below 0 (a logit)")


class Overridable:
    """A frozen recipe dataclass whose fields the command line's ``--set KEY=VALUE`` can change."""

    def to_dict(self) -> dict:
        """JSON-ready description for the manifest."""
        return asdict(self)

    def with_override(self, key: str, value: str):  # -> the same recipe type
        """A copy with the field at dotted ``key`` (e.g. ``word2vec.window``) set to ``value``, parsed by the
        field's type (tuples: comma-separated, empty for none). Raises ``ValueError`` naming the key."""
        return _override(self, key, key, value)


@dataclass(frozen=True)
class Recipe(Overridable):
    """A full STSG training configuration."""

    front_end: FrontEndParams = field(default_factory=FrontEndParams)
    tokenizer: TokenizerParams = field(default_factory=lambda: TokenizerParams(codebook_size=2048))
    word2vec: Word2VecParams = field(default_factory=Word2VecParams)
    pooling: tuple[str, ...] = ("emb_mean", "emb_std", "emb_max", "tfidf", "mel_mean", "mel_std", "mel_max")
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    head: HeadParams = field(default_factory=HeadParams)
    codebook_frames: int = 200_000
    """frames sampled to fit PCA and k-means, the same share from every soundscape and from every n-th synthetic
    window (n chosen so the windows offer about 4x this many)"""
    kmeans_iterations: int = 20
    seed: int = 0


@dataclass(frozen=True)
class TFLiteRecipe(Overridable):
    """A linear head on a pretrained model's embeddings: a third of STSG's training windows suffice (the model
    already generalises; embedding is ~10x dearer per window), with the lighter penalty its 1024 dense
    dimensions favour."""

    synthesis: SynthesisParams = field(default_factory=lambda: SynthesisParams(
        windows_per_recording=4, extra_call_probability=(), background_windows=600))
    head: HeadParams = field(default_factory=lambda: HeadParams(l2=1e-3))
    seed: int = 0


def _override(obj, path: str, key: str, value: str):
    head, _, rest = path.partition(".")
    if not is_dataclass(obj) or head not in {f.name for f in fields(obj)}:
        raise ValueError(f"{key}: no such recipe setting")
    current = getattr(obj, head)
    if rest:
        return replace(obj, **{head: _override(current, rest, key, value)})
    if is_dataclass(current):
        raise ValueError(f"{key}: a group of settings; name one of its fields")
    try:
        return replace(obj, **{head: _parse(typing.get_type_hints(type(obj))[head], value)})
    except (TypeError, ValueError, BirddError) as exc:
        raise ValueError(f"{key}={value}: {exc}") from None


def _parse(hint: object, value: str) -> object:
    """``value`` as the annotated type: bool, int, float, str, or a tuple of them (comma-separated)."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        items = tuple(args[0](v.strip()) for v in value.split(",") if v.strip())
        if args[-1] is not Ellipsis and len(items) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values")
        return items
    if hint is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError("expected true or false")
        return value.lower() in ("true", "1")
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError:
            raise ValueError("expected a whole number" if hint is int else "expected a number") from None
    return hint(value)
