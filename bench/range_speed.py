"""What BirdNET's range filter costs: the all-classes bundle's build time, and CPU per audio minute with and without it.

In one process, one thread: builds the all-classes zero-shot bundle (--rounds times, median; and once
as a ``birdd train`` command, process start included), computes a station's species mask for every
week of the year (the daemon does this once a week), then, for --rounds alternating rounds, scores
--files test soundscapes with that bundle end to end (BirdNET chunks, head, the detection policy on
every window) without and with the range mask (looked up per window by date, as the daemon does).
Prints medians and the ratio.

usage: python bench/range_speed.py [--data ../shared/bench206] [--files 10] [--rounds 3] [--lat 42.45 --lon -76.5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import find_audio_files, read_audio
from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import Model, embed_signal, load_model
from daemon.model.range_filter import RangeFilter, StationRange
from daemon.model.windows import WindowGrid
from daemon.pipeline.policy import DetectionPolicy
from trainer.tflite_zero_shot import all_classes_bundle

DAY = date(2026, 5, 25)


def cpu_seconds(model: Model, policy: DetectionPolicy, signals: list[np.ndarray], station: StationRange | None
                ) -> tuple[float, int]:
    """CPU seconds to score every signal and pick its detections; and the number of detections."""
    grid = WindowGrid()
    found = 0
    started = time.process_time()
    for samples in signals:
        windows = embed_signal(model.backend, samples, grid)
        for scores in model.head.probabilities(np.stack([w.vector for w in windows])):
            found += len(policy.select(scores, station.for_date(DAY) if station else None))
    return time.process_time() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lat", type=float, default=42.45)
    parser.add_argument("--lon", type=float, default=-76.5)
    args = parser.parse_args()
    signals = [read_audio(p) for p in find_audio_files([args.data / "test_soundscapes"])[: args.files]]
    minutes = sum(s.size for s in signals) / SAMPLE_RATE / 60
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        builds = []
        for i in range(args.rounds):
            started = time.perf_counter()
            bundle = all_classes_bundle(Path(tmp) / f"all{i}")
            builds.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([Path(sys.executable).with_name("birdd"), "--log-level", "WARNING", "train", "--backend",
                        "tflite", "--zero-shot", "-o", Path(tmp) / "cli"], check=True, capture_output=True)
        command = time.perf_counter() - started
        model = load_model(bundle, threads=1)
        policy = DetectionPolicy(DetectionConfig(threshold=0.25), model.species)
        started = time.perf_counter()
        station = StationRange(RangeFilter.open(), model.species, args.lat, args.lon)
        opened = time.perf_counter() - started
        started = time.perf_counter()
        for week in range(1, 49):
            station.for_week(week)
        per_week = (time.perf_counter() - started) / 48
        rows = model.head.probabilities(np.stack([w.vector for w in embed_signal(model.backend, signals[0],
                                                                                  WindowGrid())]))
        select_us = {}
        for name, lookup in (("without", lambda: None), ("with", lambda: station.for_date(DAY))):
            started = time.process_time()
            for _ in range(200):
                for scores in rows:
                    policy.select(scores, lookup())
            select_us[name] = 1e6 * (time.process_time() - started) / (200 * len(rows))
        without, within = [], []
        for _ in range(args.rounds):
            spent, found_all = cpu_seconds(model, policy, signals, None)
            without.append(spent)
            spent, found_in_range = cpu_seconds(model, policy, signals, station)
            within.append(spent)
    print(f"all-classes bundle ({len(model.species)} classes): built in {statistics.median(builds):.2f} s "
          f"(median of {args.rounds}), {command:.2f} s as a birdd train command; "
          f"range model opened in {opened * 1000:.0f} ms, "
          f"{per_week * 1000:.1f} ms per week's mask")
    print(f"per window, the detection policy alone: {select_us['without']:.1f} us without the mask, "
          f"{select_us['with']:.1f} us with the week's mask looked up by date")
    print(f"{minutes:.0f} min of audio, {args.rounds} alternating rounds, one thread; decoding excluded; "
          f"at {args.lat}, {args.lon} on {DAY}")
    print("| BirdNET V2.4 zero-shot, all classes | CPU ms per audio minute (median) | ratio | detections at 0.25 |")
    print("|---|---|---|---|")
    reference = statistics.median(without)
    for name, spent, found in (("without the range filter", without, found_all),
                               ("with the range filter", within, found_in_range)):
        print(f"| {name} | {1000 * statistics.median(spent) / minutes:.1f} | "
              f"{statistics.median(spent) / reference:.3f} | {found} |")


if __name__ == "__main__":
    main()
