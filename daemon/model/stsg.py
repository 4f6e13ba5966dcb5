"""The STSG backend: log-mel frames -> spectrogram tokens -> pooled token statistics per window."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon.model.features import FrontEndParams, StreamingLogMel
from daemon.model.pooling import TokenWindowPooler, WindowFeaturizer
from daemon.model.tokenizer import Codebook, StreamingTokenizer, TokenBlock, TokenizerParams
from daemon.model.windows import WindowGrid

NAME = "stsg"
EMA_SETTLE_TIME_CONSTANTS = 20
"""time constants after which a running band mean has forgotten its start: e^-20 < float32 precision"""


class TokenEncoder:
    """Streaming stage: audio samples in, :class:`TokenBlock` s out."""

    def __init__(self, front_end: FrontEndParams, codebook: Codebook) -> None:
        self.logmel = StreamingLogMel(front_end)
        self.tokenizer = StreamingTokenizer(codebook, front_end.n_mels)

    def push(self, samples: np.ndarray) -> list[TokenBlock]:
        """Tokens of every frame block the samples complete."""
        return [self.tokenizer.push(block) for block in self.logmel.push(samples)]

    def flush(self) -> list[TokenBlock]:
        """End of stream: tokens of the last partial block; the encoder is ready for a new stream."""
        blocks = [self.tokenizer.push(block) for block in self.logmel.flush()]
        self.tokenizer.reset()
        return blocks


@dataclass
class STSGBackend:
    """Front end, codebook and window featurizer of one model bundle."""

    front_end: FrontEndParams
    codebook: Codebook
    featurizer: WindowFeaturizer
    name: str = NAME

    @classmethod
    def from_bundle(cls, params: dict, arrays: dict[str, np.ndarray]) -> STSGBackend:
        """Build from the manifest's ``backend_params`` and the bundle arrays."""
        front_end = FrontEndParams.from_dict(params["front_end"])
        tokenizer = TokenizerParams.from_dict(params["tokenizer"])
        codebook = Codebook(tokenizer, arrays["codebook"], arrays.get("pca_mean"), arrays.get("pca_components"))
        featurizer = WindowFeaturizer(params["pooling"]["blocks"], arrays.get("token_vectors"), arrays.get("idf"))
        return cls(front_end, codebook, featurizer)

    def context_samples(self) -> int:
        """Audio a stream started mid-recording needs before its first window to equal the unsplit stream.

        Frames are causal and span ``n_fft`` samples; a running band background (``band_ema_frames``) needs
        20 time constants to forget where it started (to below float32 precision).
        """
        settle_frames = math.ceil(EMA_SETTLE_TIME_CONSTANTS * self.codebook.params.band_ema_frames)
        return self.front_end.n_fft - self.front_end.hop + settle_frames * self.front_end.hop

    def encoder(self) -> TokenEncoder:
        """A new streaming encoder (audio -> token blocks)."""
        return TokenEncoder(self.front_end, self.codebook)

    def pooler(self, grid: WindowGrid) -> TokenWindowPooler:
        """A new streaming pooler (token blocks -> window vectors) on ``grid``."""
        return TokenWindowPooler(grid, self.front_end.hop, self.front_end.block_frames,
                                 self.codebook.params.codebook_size, self.featurizer)
