"""Replay speed: 700 one-minute soundscapes scored end to end vs merely decoded, in the same run.

The 100 bench206 test soundscapes are linked 7 times into a temporary folder (700 files, 700
minutes), then, alternating, for --rounds rounds:
  decode: every file decoded by a pool of one process per core (the floor: nothing can be faster
          than reading the audio);
  replay: `birdd replay` of the folder into a submission CSV with each --model, as a subprocess (end to end:
          start-up, model loading, decoding, features, tokens, pooling, head, CSV).
Prints each round and the medians, the replay/decode ratio, and the real-time factor; also the CPU seconds (user +
system of the child processes) of each, which a machine shared with other work disturbs less than wall time.

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
import resource
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


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def decode_all(paths: list[Path], jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds of decoding ``paths`` in a pool of ``jobs`` processes."""
    started, cpu = time.perf_counter(), children_cpu()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for _ in pool.imap(_decode_length, paths, chunksize=2):
            pass
        pool.close()
        pool.join()  # the workers reaped, so that their CPU time is counted
    return time.perf_counter() - started, children_cpu() - cpu


def _decode_length(path: Path) -> int:
    return read_audio(path).size


def replay_all(folder: Path, model: Path, output: Path, src: Path | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of ``birdd replay`` of ``folder``; ``src``: run that source tree's birdd instead."""
    birdd = Path(sys.executable).with_name("birdd")
    env = {**os.environ, "PYTHONPATH": str(src.resolve())} if src else None
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run([str(birdd), "--log-level", "WARNING", "replay", str(folder), "-m", str(model), "-o", str(output),
                    "--no-progress"], check=True, env=env)
    return time.perf_counter() - started, children_cpu() - cpu


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
        outputs = {run: Path(tmp) / f"submission_{i}.csv" for i, run in enumerate(runs)}
        for i in range(args.rounds):
            decode_times.append(decode_all(paths, jobs))
            wall, cpu = decode_times[-1]
            line = f"round {i + 1}: decode {wall:.1f} s (CPU {cpu:.1f} s)"
            for run in runs:
                took = replay_all(folder, run[0], outputs[run], run[1])
                replay_times[run].append(took)
                line += f"; {_name(*run)} {took[0]:.1f} s ({took[0] / wall:.2f}x; CPU {took[1] / cpu:.2f}x)"
            print(line, flush=True)
        rows = sum(1 for _ in outputs[runs[0]].open()) - 1
        same = all(outputs[run].read_bytes() == outputs[(run[0], None)].read_bytes() for run in runs)
    d, d_cpu = (statistics.median(t[k] for t in decode_times) for k in (0, 1))
    print(f"{len(paths)} files, {minutes:.0f} min of audio, {rows} rows, {jobs} processes; "
          f"median decode only {d:.1f} s (CPU {d_cpu:.1f} s)")
    for run, times in replay_times.items():
        r, r_cpu = (statistics.median(t[k] for t in times) for k in (0, 1))
        print(f"{_name(*run)}: median replay end to end {r:.1f} s ({minutes * 60 / r:.0f}x real time); "
              f"replay/decode {r / d:.2f} (CPU {r_cpu:.1f} s, {r_cpu / d_cpu:.2f})")
    if args.reference_src:
        print("submissions of this code and the reference: " + ("byte-identical" if same else "DIFFERENT"))


def _name(model: Path, src: Path | None) -> str:
    return f"{model} (code {src})" if src else str(model)


if __name__ == "__main__":
    main()
