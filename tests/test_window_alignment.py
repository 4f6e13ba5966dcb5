"""Windows are aligned to stream start, named by their end second, and a short tail is dropped."""

import numpy as np
import pytest

from daemon.errors import BundleError
from daemon.model.pooling import TokenWindowPooler, WindowFeaturizer
from daemon.model.tokenizer import TokenBlock
from daemon.model.windows import WindowGrid

HOP = 320  # samples per frame
BLOCK = 100  # frames per block


def token_blocks(n_frames: int, k: int, rng) -> list[TokenBlock]:
    return [TokenBlock(first, rng.integers(0, k, min(BLOCK, n_frames - first)).astype(np.int32),
                       rng.standard_normal((min(BLOCK, n_frames - first), 4)).astype(np.float32))
            for first in range(0, n_frames, BLOCK)]


def run(grid: WindowGrid, seconds: float, rng, k: int = 8):
    n_frames = int(seconds * 32000) // HOP  # causal frames: frame i ends at sample (i + 1) * HOP
    pooler = TokenWindowPooler(grid, HOP, BLOCK, k, WindowFeaturizer(["mel_mean", "tfidf"], None, np.ones(k)))
    windows = []
    for block in token_blocks(n_frames, k, rng):
        windows += pooler.push(block)
    return windows + pooler.flush()


@pytest.mark.parametrize(("seconds", "ends"), [
    (60, list(range(5, 61, 5))),
    (63, [*range(5, 61, 5), 65]),
    (62, list(range(5, 61, 5))),
    (2, [5]),
    (7.4, [5]),
    (7.6, [5, 10]),
])
def test_window_ends_for_file_lengths(rng, seconds, ends):
    assert [w.end_sample // 32000 for w in run(WindowGrid(), seconds, rng)] == ends


def test_overlapping_windows_share_blocks(rng):
    windows = run(WindowGrid.with_hop_seconds(1), 10, rng)
    assert [w.start_sample // 32000 for w in windows] == [0, 1, 2, 3, 4, 5]  # none past the audio's end
    assert all(w.end_sample - w.start_sample == 5 * 32000 for w in windows)
    windows = run(WindowGrid.with_hop_seconds(2), 10, rng)
    assert [w.start_sample // 32000 for w in windows] == [0, 2, 4, 6]  # 6-11 s still holds audio 10 s does not


def test_a_sliver_of_audio_gets_a_window_only_when_asked(rng):
    assert len(run(WindowGrid(), 0.05, rng)) == 1  # a short file is still scored
    assert run(WindowGrid(min_first=WindowGrid.min_tail), 0.05, rng) == []  # the daemon, between two gaps
    assert len(run(WindowGrid(min_first=WindowGrid.min_tail), 3, rng)) == 1


def test_window_counts_every_frame_once(rng):
    k = 8
    pooler = TokenWindowPooler(WindowGrid(), HOP, BLOCK, k, WindowFeaturizer(["tfidf"], None, np.ones(k)))
    blocks = token_blocks(1000, k, rng)
    windows = [w for b in blocks for w in pooler.push(b)]
    counts = np.bincount(np.concatenate([b.tokens for b in blocks[:5]]), minlength=k)
    expected = np.log1p(counts) / np.linalg.norm(np.log1p(counts))
    np.testing.assert_allclose(windows[0].vector, expected, rtol=1e-6)


def test_hop_must_be_a_multiple_of_the_frame_block():
    with pytest.raises(BundleError, match="multiples"):
        TokenWindowPooler(WindowGrid(hop=16000), HOP, BLOCK, 8, WindowFeaturizer(["tfidf"], None, np.ones(8)))
