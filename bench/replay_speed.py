"""Replay speed: 700 one-minute soundscapes scored end to end vs merely decoded, in the same run.

The 100 bench206 test soundscapes are linked 7 times into a temporary folder (700 files, 700
minutes), then, alternating, for --rounds rounds:
  decode: every file decoded by a pool of one process per core (the floor: nothing can be faster
          than reading the audio);
  replay: `birdd replay` of the folder into a submission CSV with each --model, as a subprocess (end to end:
          start-up, model loading, decoding, features, tokens, pooling, head, CSV).
Prints each round and the medians, the replay/decode ratio, and the real-time factor.

With --reference-src DIR (a checkout of another birdd version, e.g. `git worktree add /tmp/ref REV`), each model
is also replayed by that version's code in the same rounds, so a change is measured against its reference
side by side.

usage: python bench/replay_speed.py [--model out/model ...] [--data ../shared/bench206] [--copies 7] [--rounds 3]
                                    [--reference-src DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemon.audio.files import read_audio


def link_copies(folder: Path, sources: list[Path], copies: int) -> None:
    """``copies`` symbolic links to each source in ``folder`` (``c<copy>_<name>``), kept if already there."""
    folder.mkdir(parents=True, exist_ok=True)
    for copy in range(copies):
        for src in sources:
            link = folder / f"c{copy}_{src.name}"
            if not link.is_symlink():
                link.symlink_to(src.resolve())


def decode_all(paths: list[Path], jobs: int) -> float:
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for _ in pool.imap(_decode_length, paths, chunksize=2):
            pass
    return time.perf_counter() - started


def _decode_length(path: Path) -> int:
    return read_audio(path).size


def replay_all(folder: Path, model: Path, output: Path, src: Path | None = None) -> float:
    """Wall time of ``birdd replay`` of ``folder``; ``src``: run that source tree's birdd instead of this one."""
    birdd = Path(sys.executable).with_name("birdd")
    env = {**os.environ, "PYTHONPATH": str(src.resolve())} if src else None
    started = time.perf_counter()
    subprocess.run([str(birdd), "--log-level", "WARNING", "replay", str(folder), "-m", str(model), "-o", str(output),
                    "--no-progress"], check=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="model bundle (repeat to compare several in the same run; default out/model)")
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--copies", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference-src", type=Path, help="another birdd source tree to time side by side")
    args = parser.parse_args()
    sources = sorted((args.data / "test_soundscapes").glob("*.ogg"))
    if not sources:
        sys.exit(f"no soundscapes under {args.data / 'test_soundscapes'}")
    jobs = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "soundscapes"
        link_copies(folder, sources, args.copies)
        paths = sorted(folder.iterdir())
        minutes = sum(read_audio(p).size for p in sources) / 32000 / 60 * args.copies
        models = list(dict.fromkeys(args.model or [Path("out/model")]))
        runs = [(m, None) for m in models] + ([(m, args.reference_src) for m in models] if args.reference_src else [])
        decode_times, replay_times = [], {run: [] for run in runs}
        for i in range(args.rounds):
            decode_times.append(decode_all(paths, jobs))
            line = f"round {i + 1}: decode {decode_times[-1]:.1f} s"
            for model, src in runs:
                took = replay_all(folder, model, Path(tmp) / "submission.csv", src)
                replay_times[model, src].append(took)
                line += f"; {_name(model, src)} {took:.1f} s ({took / decode_times[-1]:.2f}x)"
            print(line, flush=True)
        rows = sum(1 for _ in (Path(tmp) / "submission.csv").open()) - 1
    d = statistics.median(decode_times)
    print(f"{len(paths)} files, {minutes:.0f} min of audio, {rows} rows, {jobs} processes; "
          f"median decode only {d:.1f} s")
    for (model, src), times in replay_times.items():
        r = statistics.median(times)
        print(f"{_name(model, src)}: median replay end to end {r:.1f} s ({minutes * 60 / r:.0f}x real time); "
              f"replay/decode {r / d:.2f}")


def _name(model: Path, src: Path | None) -> str:
    return f"{model} (code {src})" if src else str(model)


if __name__ == "__main__":
    main()
