"""Can the nearest-centroid token search be made cheaper and still give exactly today's tokens?

    python bench/token_search.py --model out/bench/default [--data ../shared/bench206] [--files 20]

The search is one float32 matrix product per block of frames (``(100, n_mels) @ (n_mels, k)``, OpenBLAS sgemm),
minus half the centroids' squared norms, and an argmax. OpenBLAS's rounding depends on the shape of the product
(another number of rows or columns gives other last bits), so any search that computes fewer columns, or the
same columns another way, can only promise today's tokens where the best centroid wins by more than the
float32 error bound of a 64-term dot product; elsewhere it has to fall back to the block's full product. Prints,
on ``--files`` test soundscapes in one process:

- the time of each stage per one-minute file (decoding, log-mel, normalisation, the search's product, its
  subtraction and argmax), the profile that says how much a cheaper search could save at most;
- the block product's GFLOP/s against a 1024^3 product's (how close to the BLAS's best it runs already);
- whether the product of a block's rows or columns alone equals the full product's bits (it does not);
- the near ties: frames whose best and second-best centroid differ by less than the error bound (there, another
  arithmetic may pick another token), and the share of 100-frame blocks that hold one (a certified search must
  redo those blocks in full);
- how well a certified low-rank bound prunes: the centroids projected on their top ``r`` principal directions,
  the rest bounded by Cauchy-Schwarz in ``B`` groups of dimensions; the candidates left per frame and per block.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.audio.files import read_audio  # noqa: E402
from daemon.model.loader import load_model  # noqa: E402

ERROR_BOUND = 5e-6
"""float32 error of ``x . c - |c|^2 / 2`` in any summation order, relative to ``|x| |c| + |c|^2 / 2``: 64 terms
(gamma_65 = 3.9e-6) plus the subtraction's rounding, rounded up"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    threadpool_limits(1)
    backend = load_model(args.model).backend
    codebook = backend.codebook
    if codebook.params.pca_dim or codebook.params.l2:
        sys.exit("this bench measures the default recipe's search (no PCA, no L2 scaling)")
    files = sorted((args.data / "test_soundscapes").glob("*.ogg"))[: args.files]
    timings = dict.fromkeys(("decode", "log-mel", "normalise", "product", "argmax"), 0.0)
    blocks, seconds = [], 0.0
    for path in files:
        started = time.perf_counter()
        samples = read_audio(path)
        timings["decode"] += time.perf_counter() - started
        seconds += samples.size / backend.front_end.sample_rate
        encoder = backend.encoder()
        started = time.perf_counter()
        frame_blocks = encoder.logmel.push(samples) + encoder.logmel.flush()
        timings["log-mel"] += time.perf_counter() - started
        for block in frame_blocks:
            started = time.perf_counter()
            frames = encoder.tokenizer.normaliser(block.logmel)
            mid = time.perf_counter()
            scores = frames @ codebook.centroids.T
            end = time.perf_counter()
            scores -= codebook._half_sqnorm
            scores.argmax(axis=1)
            timings["normalise"] += mid - started
            timings["product"] += end - mid
            timings["argmax"] += time.perf_counter() - end
            blocks.append(frames)
    minutes = seconds / 60
    print(f"{len(files)} files, {minutes:.1f} min of audio, k={codebook.params.codebook_size}; per minute of audio, "
          "one process: " + ", ".join(f"{name} {1e3 * t / minutes:.1f} ms" for name, t in timings.items()))
    full_blocks = [b for b in blocks if b.shape[0] == backend.front_end.block_frames]
    blas_rate(full_blocks[0], codebook.centroids)
    shape_invariance(full_blocks[0], codebook.centroids)
    near_ties(full_blocks, codebook.centroids, codebook._half_sqnorm)
    pruning(full_blocks[:200], codebook.centroids, codebook._half_sqnorm)


def blas_rate(frames: np.ndarray, centroids: np.ndarray) -> None:
    """GFLOP/s of the block product against a large square product's (the BLAS's best on this core)."""
    square = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    rates = []
    for a, b in ((frames, centroids.T), (square, square)):
        seconds = min(timeit.repeat(lambda a=a, b=b: a @ b, number=5, repeat=5)) / 5
        rates.append(2 * a.shape[0] * a.shape[1] * b.shape[1] / seconds / 1e9)
    print(f"block product {rates[0]:.1f} GFLOP/s, a 1024^3 product {rates[1]:.1f} GFLOP/s "
          f"({100 * rates[0] / rates[1]:.0f} %), one thread")


def shape_invariance(frames: np.ndarray, centroids: np.ndarray) -> None:
    """Whether sub-products carry the full product's bits."""
    full = frames @ centroids.T
    half = centroids.shape[0] // 2
    cols = np.array_equal(frames @ centroids[:half].T, full[:, :half])
    rows = np.array_equal(frames[:50] @ centroids.T, full[:50])
    print(f"bits of the full block product reproduced by: its first {half} columns alone {cols}, its first 50 rows "
          f"alone {rows}")


def _exact(frames: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ centroids.T.astype(np.float64)


def near_ties(blocks: list[np.ndarray], centroids: np.ndarray, half_sqnorm: np.ndarray) -> None:
    """Frames whose best centroid does not win by the float32 error bound; tokens another arithmetic changes."""
    tied, blocks_tied, frames, changed = 0, 0, 0, 0
    c_norm = np.linalg.norm(centroids.astype(np.float64), axis=1)
    for block in blocks:
        today = (block @ centroids.T - half_sqnorm).argmax(1)
        exact = _exact(block, centroids) - half_sqnorm
        best = exact.argmax(1)
        error = ERROR_BOUND * (np.linalg.norm(block.astype(np.float64), axis=1)[:, None] * c_norm + half_sqnorm)
        rows = np.arange(len(block))
        margin = exact[rows, best][:, None] - exact - error - error[rows, best][:, None]
        margin[rows, best] = np.inf
        unsure = (margin <= 0).any(axis=1)
        tied += int(unsure.sum())
        blocks_tied += bool(unsure.any())
        frames += len(block)
        changed += int((today != best).sum())
    print(f"near ties: {tied} of {frames} frames ({100 * tied / frames:.3f} %) within the error bound, in "
          f"{blocks_tied} of {len(blocks)} blocks ({100 * blocks_tied / len(blocks):.1f} %); tokens of an exact "
          f"(float64) search that differ from today's: {changed}")


def pruning(blocks: list[np.ndarray], centroids: np.ndarray, half_sqnorm: np.ndarray) -> None:
    """Candidates a certified low-rank bound leaves (all others provably lose)."""
    c = centroids.astype(np.float64)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    dims = c.shape[1]
    for rank in (16, 24, 32, 48):
        for groups in (1, 8):
            split = np.array_split(np.arange(dims - rank), groups)
            basis, rest = vt[:rank].T, vt[rank:].T
            c_low, c_rest = c @ basis, c @ rest
            c_norms = np.stack([np.linalg.norm(c_rest[:, g], axis=1) for g in split], 1)
            per_frame, per_block = [], []
            for block in blocks:
                x = block.astype(np.float64)
                x_rest = x @ rest
                slack = np.stack([np.linalg.norm(x_rest[:, g], axis=1) for g in split], 1) @ c_norms.T
                approx = (x @ basis) @ c_low.T - half_sqnorm
                survivors = approx + slack >= (approx - slack).max(axis=1, keepdims=True)
                per_frame.append(survivors.sum(1))
                per_block.append(survivors.any(0).sum())
            counts = np.concatenate(per_frame)
            print(f"rank {rank:2d}, {groups} residual group(s): product work {(rank + groups) / dims:.2f} of the "
                  f"full one; candidates per frame mean {counts.mean():.1f}, 99th percentile "
                  f"{np.quantile(counts, 0.99):.0f}; union over a 100-frame block {np.mean(per_block):.0f} of "
                  f"{c.shape[0]}")


if __name__ == "__main__":
    main()
