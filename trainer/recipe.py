"""Every training knob in one frozen object; it is recorded in the bundle manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from daemon.features import FrontEndParams
from daemon.tokenizer import TokenizerParams


@dataclass(frozen=True)
class Word2VecParams:
    """gensim skip-gram settings for the token embeddings."""

    vector_size: int = 64
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    epochs: int = 5
    min_count: int = 1
    sample: float = 1e-3
    """down-sampling of very frequent tokens (e.g. background frames)"""


@dataclass(frozen=True)
class SynthesisParams:
    """How labelled 5-s training windows are made from focal clips and unlabelled soundscapes."""

    windows_per_recording: int = 4
    """labelled windows mixed per focal recording"""
    background_windows: int = 600
    """windows of background alone (all labels 0)"""
    snr_db: tuple[float, float] = (-5.0, 20.0)
    """range of call-to-background level (decibels, uniform)"""


@dataclass(frozen=True)
class HeadParams:
    """The multi-label logistic head."""

    l2: float = 1e-3
    """L2 penalty on the weights (per training window)"""
    max_iter: int = 300
    """L-BFGS iterations"""


@dataclass(frozen=True)
class Recipe:
    """A full STSG training configuration."""

    front_end: FrontEndParams = field(default_factory=FrontEndParams)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    word2vec: Word2VecParams = field(default_factory=Word2VecParams)
    pooling: tuple[str, ...] = ("emb_mean", "tfidf", "mel_mean", "mel_std")
    synthesis: SynthesisParams = field(default_factory=SynthesisParams)
    head: HeadParams = field(default_factory=HeadParams)
    codebook_frames: int = 200_000
    """frames sampled (evenly from every file) to fit PCA and k-means"""
    kmeans_iterations: int = 20
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-ready description for the manifest."""
        return asdict(self)
