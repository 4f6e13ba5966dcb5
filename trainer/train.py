"""``birdd train``: dataset -> STSG model bundle, stage by stage with timings."""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from daemon.audio.files import read_audio
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.errors import AudioError, DatasetError
from daemon.model.bundle import write_bundle
from daemon.model.features import FrameBlock, StreamingLogMel
from daemon.model.head import LinearHead
from daemon.model.loader import build_manifest, embed_signal
from daemon.model.pooling import WindowFeaturizer
from daemon.model.stsg import NAME as STSG
from daemon.model.stsg import STSGBackend
from daemon.model.tokenizer import FrameNormaliser, StreamingTokenizer
from daemon.model.windows import WindowGrid
from trainer.audio_spill import Samples
from trainer.codebook_fit import FrameSample, fit_codebook
from trainer.dataset import Dataset, load_dataset
from trainer.head_fit import fit_head
from trainer.recipe import Recipe
from trainer.synthesis import WINDOW_SAMPLES, training_windows, window_count
from trainer.token_embeddings import fit_idf, fit_token_vectors

log = logging.getLogger(__name__)


@dataclass
class DecodedAudio:
    """Decoded training audio; what could not be read is listed, not fatal."""

    clips: list[np.ndarray]
    labels: list[int]
    soundscapes: list[np.ndarray]
    failed: list[str]


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Log a training stage's start and duration."""
    log.info("%s ...", name)
    started = time.perf_counter()
    yield
    log.info("%s done in %.1f s", name, time.perf_counter() - started)


def decode_dataset(dataset: Dataset, progress: bool) -> DecodedAudio:
    """Decode every recording and soundscape; unreadable files are logged and skipped."""
    index = {code: i for i, code in enumerate(dataset.codes)}
    decoded = DecodedAudio([], [], [], [])
    items = [(r.path, index[r.label]) for r in dataset.recordings] + [(p, -1) for p in dataset.soundscapes]
    for path, label in tqdm(items, desc="decode", unit="file", disable=not progress):
        try:
            audio = read_audio(path)
        except AudioError as exc:
            log.warning("skipped: %s", exc)
            decoded.failed.append(str(path))
            continue
        if label >= 0:
            decoded.clips.append(audio)
            decoded.labels.append(label)
        else:
            decoded.soundscapes.append(audio)
    if not decoded.clips:
        raise DatasetError(f"{dataset.root}: none of the {len(dataset.recordings)} training recordings could be read")
    return decoded


@dataclass
class FittedSTSG:
    """An STSG backend fitted on decoded audio, its arrays, and the training windows it was fitted on."""

    backend: STSGBackend
    arrays: dict[str, np.ndarray]
    n_windows: int

    def head(self) -> LinearHead:
        """The fitted head, as the runtime loads it."""
        return LinearHead(self.arrays["head_mean"], self.arrays["head_scale"], self.arrays["head_weights"],
                          self.arrays["head_bias"])


@dataclass(frozen=True)
class WindowSource:
    """Training windows: ``make()`` yields the same seeded ``(5-s window, target)`` sequence on every call
    (so they are never all in memory), ``count`` of them."""

    make: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
    count: int

    def then(self, other: WindowSource) -> WindowSource:
        """These windows, then ``other``'s."""
        return WindowSource(lambda: itertools.chain(self.make(), other.make()), self.count + other.count)


def fit_stsg(audio: DecodedAudio, n_species: int, recipe: Recipe, progress: bool = False) -> FittedSTSG:
    """Codebook, token embeddings, idf and linear head from decoded labelled audio (no files read or written).

    The training windows are the focal clips mixed into the soundscapes (:func:`training_windows`).
    """
    windows = WindowSource(functools.partial(_training_windows, audio, n_species, recipe),
                           window_count(len(audio.clips), recipe.synthesis))
    return fit_stsg_on(audio.soundscapes or audio.clips, windows, recipe, progress)


def fit_stsg_on(streams: list[Samples], windows: WindowSource, recipe: Recipe,
                progress: bool = False, head_only: WindowSource | None = None) -> FittedSTSG:
    """Fit an STSG model on unlabelled ``streams`` (long field recordings) and target-labelled ``windows``:
    its features (:func:`fit_stsg_features`), then the head on the windows' features and targets (0/1 or soft),
    and on those of ``head_only`` (windows the codebook does not sample).
    """
    backend, arrays = fit_stsg_features(streams, windows, recipe, progress)
    windows = windows if head_only is None else windows.then(head_only)
    with stage("training windows"):
        features, labels = window_features(backend, windows, progress)
    with stage("linear head"):
        arrays.update(fit_head(features, labels, recipe.head))
    return FittedSTSG(backend, arrays, int(features.shape[0]))


def fit_stsg_features(streams: list[Samples], windows: WindowSource, recipe: Recipe,
                      progress: bool = False) -> tuple[STSGBackend, dict[str, np.ndarray]]:
    """The STSG backend (no head yet) and its arrays. The codebook is fitted on frames of what the model will
    hear: the streams and the training windows (calls over field background), not clean focal clips.
    Skip-gram vectors and idf are learnt from the streams' tokens. One signal's frames are held at a time (and
    the codebook's bounded sample of them), so memory does not grow with the streams' hours."""
    params, hop = recipe.tokenizer, recipe.front_end.hop
    window_frames = WINDOW_SECONDS * SAMPLE_RATE // hop
    with stage("codebook"):
        # every stride-th training window: about 4x the frames k-means samples, so the sample is varied
        # without computing the frames of every window twice
        stride = max(1, round(windows.count * window_frames / max(recipe.codebook_frames, 1) / 4))
        n_window_sets = -(-windows.count // stride)
        window_audio = (x for x, _ in itertools.islice(windows.make(), 0, None, stride))
        total = sum(x.size // hop for x in streams) + n_window_sets * (WINDOW_SAMPLES // hop)  # a frame per hop
        sample = FrameSample(total, recipe.codebook_frames, np.random.default_rng(recipe.seed))
        for x in tqdm(itertools.chain(streams, window_audio), total=len(streams) + n_window_sets,
                      desc="codebook frames", unit="signal", disable=not progress):
            sample.add(_normalised(recipe, _frame_blocks(recipe, x)))
        codebook, arrays = fit_codebook(sample.frames(), params, recipe.kmeans_iterations, recipe.seed)
    with stage("tokens"):
        sequences = [_tokens(codebook, recipe, _frame_blocks(recipe, x))
                     for x in tqdm(streams, desc="tokens", unit="file", disable=not progress)]
    with stage("skip-gram token embeddings"):
        if any(b.startswith("emb_") for b in recipe.pooling):
            arrays["token_vectors"] = fit_token_vectors(sequences, params.codebook_size, recipe.word2vec, recipe.seed)
        if "tfidf" in recipe.pooling:
            arrays["idf"] = fit_idf(sequences, params.codebook_size, window_frames)
    featurizer = WindowFeaturizer(list(recipe.pooling), arrays.get("token_vectors"), arrays.get("idf"))
    return STSGBackend(recipe.front_end, codebook, featurizer), arrays


def train(data_dir: str | Path, out_dir: str | Path, recipe: Recipe | None = None, progress: bool = True) -> Path:
    """Train an STSG model on the BirdCLEF-style dataset at ``data_dir`` and write the bundle to ``out_dir``."""
    recipe = recipe or Recipe()
    started = time.perf_counter()
    dataset = load_dataset(data_dir)
    log.info("dataset %s: %d species, %d recordings, %d soundscapes", dataset.root, len(dataset.species),
             len(dataset.recordings), len(dataset.soundscapes))
    with stage("decode audio"):
        audio = decode_dataset(dataset, progress)
    fitted = fit_stsg(audio, len(dataset.species), recipe, progress)
    manifest = build_manifest(
        Path(out_dir).name, STSG, stsg_backend_params(recipe), dataset.species, recipe=recipe.to_dict(), training_data={
            "root": str(dataset.root),
            "recordings": len(audio.clips),
            "soundscapes": len(audio.soundscapes),
            "skipped_files": audio.failed,
            "species_with_audio": len(set(audio.labels)),
            "training_windows": fitted.n_windows,
            "audio_seconds": round(sum(x.size for x in audio.clips + audio.soundscapes) / SAMPLE_RATE, 1),
        })
    path = write_bundle(out_dir, manifest, fitted.arrays)
    log.info("model written to %s in %.1f s (%d files skipped)", path, time.perf_counter() - started,
             len(audio.failed))
    return path


def stsg_backend_params(recipe: Recipe) -> dict:
    """The manifest's ``backend_params`` of an STSG model fitted with ``recipe``."""
    return {"front_end": recipe.front_end.to_dict(), "tokenizer": recipe.tokenizer.to_dict(),
            "pooling": {"blocks": list(recipe.pooling)}}


PUSH_SAMPLES = 60 * SAMPLE_RATE
"""samples read and pushed into the log-mel at a time (a minute; the frames do not depend on it)"""


def _frame_blocks(recipe: Recipe, samples: Samples) -> list[FrameBlock]:
    extractor = StreamingLogMel(recipe.front_end)
    blocks = []
    for start in range(0, samples.size, PUSH_SAMPLES):
        blocks += extractor.push(samples[start: start + PUSH_SAMPLES])
    return blocks + extractor.flush()


def _normalised(recipe: Recipe, blocks: list[FrameBlock]) -> np.ndarray:
    normaliser = FrameNormaliser(recipe.tokenizer, recipe.front_end.n_mels)
    return np.concatenate([normaliser(b.logmel) for b in blocks]) if blocks else np.zeros((0, recipe.front_end.n_mels))


def _tokens(codebook, recipe: Recipe, blocks: list[FrameBlock]) -> np.ndarray:
    tokenizer = StreamingTokenizer(codebook, recipe.front_end.n_mels)
    return np.concatenate([tokenizer.push(b).tokens for b in blocks]) if blocks else np.zeros(0, np.int32)


def _training_windows(audio: DecodedAudio, n_species: int, recipe: Recipe) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The labelled training windows; the same sequence on every call (seeded), so they are never all in memory."""
    rng = np.random.default_rng(recipe.seed + 1)
    return training_windows(audio.clips, audio.labels, audio.soundscapes, n_species, recipe.synthesis, rng)


def window_features(backend: STSGBackend, windows: WindowSource, progress: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The windows' feature vectors and targets, made one window at a time and filled into arrays of
    ``windows.count`` rows (no list of vectors beside them: the features are the largest thing training holds)."""
    grid, total = WindowGrid(), windows.count
    features = labels = None
    count = 0
    for samples, target in tqdm(windows.make(), total=total, desc="windows", unit="win", disable=not progress):
        vector = embed_signal(backend, samples, grid)[0].vector
        if features is None:
            features = np.empty((total, vector.size), dtype=vector.dtype)
            labels = np.empty((total, target.size), dtype=np.asarray(target).dtype)
        features[count], labels[count] = vector, target
        count += 1
    if count != total:
        raise ValueError(f"training windows: {count} made, {total} expected")
    return features, labels
