"""Model cost per minute of audio: each bundle's stages timed side by side, in one process, one thread.

Decodes --files test soundscapes once (decoding is the same for every model and is left out), then,
for --rounds rounds, runs every bundle over all of them (features, tokens or TFLite chunks, pooling,
head) and records the CPU time (time.process_time, BLAS limited to one thread). Prints the median
milliseconds of CPU per minute of audio for each bundle and its ratio to the first bundle.

usage: python bench/model_speed.py MODEL [MODEL ...] [--data ../shared/bench206] [--files 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import find_audio_files, read_audio
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import Model, embed_signal, load_model
from daemon.model.windows import WindowGrid


def cpu_seconds(model: Model, signals: list[np.ndarray]) -> float:
    """CPU seconds to score every signal end to end (after decoding)."""
    grid = WindowGrid()
    started = time.process_time()
    for samples in signals:
        windows = embed_signal(model.backend, samples, grid)
        if windows:
            model.head.probabilities(np.stack([w.vector for w in windows]))
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    signals = [read_audio(p) for p in find_audio_files([args.data / "test_soundscapes"])[: args.files]]
    minutes = sum(s.size for s in signals) / SAMPLE_RATE / 60
    with threadpool_limits(1):
        models = [load_model(path, threads=1) for path in args.models]
        times: list[list[float]] = [[] for _ in models]
        for _ in range(args.rounds):
            for model, spent in zip(models, times, strict=True):
                spent.append(cpu_seconds(model, signals))
    reference = statistics.median(times[0])
    print(f"{minutes:.0f} min of audio, {args.rounds} rounds, one thread; decoding excluded")
    print("| model | CPU ms per audio minute (median) | ratio to the first |")
    print("|---|---|---|")
    for path, spent in zip(args.models, times, strict=True):
        median = statistics.median(spent)
        print(f"| {path.name} | {1000 * median / minutes:.1f} | {median / reference:.2f} |")


if __name__ == "__main__":
    main()
