"""Archive-scale replay: a 3-hour recording in bounded memory, --dask against the process pool, resume after a kill.

Three parts, each side by side in the same run (the machine's cores may be shared: compare the ratios):

  long    the bench206 test soundscapes cycled to --minutes one-minute pieces (default 180: 100 files, then the
          first 80 again) joined into one 24-bit FLAC under --work (delete it when done); `birdd replay` of it
          into a Parquet submission, sampling the process tree's memory and CPU: peak RSS (sum over the
          processes, and the largest one), CPU seconds per wall second; then the windows and float32 scores are
          compared with the joined file decoded block by block into one ScoringPipeline in this process (the
          joined signal, unsplit).
  dask    700 one-minute files (the 100 test soundscapes linked 7 times, as bench/replay_speed.py), alternating
          for --rounds rounds: the default process pool, `--dask local`, and a separately started
          `dask scheduler` + two `dask worker --nworkers 1 --nthreads 1` processes on loopback, configured as
          docs/scale.md says (daemon.batch.dask_runner.WORKER_CONFIG in a Dask YAML file); output bytes compared.
  resume  the same 700 files: a full `--resume` run, then a run killed with SIGKILL once half the files are
          journalled and resumed; resumed time / full time and output bytes compared.
  memory  peak memory against a recording's length: joined files of --lengths minutes replayed with -j 1 into a
          submission CSV (every species' score of every window: the output that grows fastest with a bundle of
          many species); with --reference FOLDER (a checkout of other code, e.g. `git worktree add /tmp/ref
          COMMIT`), the same commands from its code, side by side.

usage: python bench/archive_bench.py [long|dask|resume|memory ...] [--model out/bench/default]
                                     [--data ../shared/bench206] [--work /tmp/birdd_archive] [--rounds 3]
                                     [--lengths 10 60] [--reference FOLDER]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import soundfile as sf
import yaml
from replay_speed import link_copies
from threadpoolctl import threadpool_limits

from daemon.audio.files import read_audio, read_audio_blocks
from daemon.batch.dask_runner import WORKER_CONFIG
from daemon.batch.formats import FileScores
from daemon.batch.journal import journal_dir
from daemon.batch.segments import file_scores
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import Model, load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline

BIRDD = Path(sys.executable).with_name("birdd")
DASK = Path(sys.executable).with_name("dask")


class TreeSampler(threading.Thread):
    """Samples a process and its children every ``period`` s: peak summed PSS (shared pages counted once, split
    among the processes sharing them), peak RSS of the largest process, CPU time of each process."""

    def __init__(self, pid: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.period = psutil.Process(pid), period
        self.peak_sum = self.peak_one = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    memory = proc.memory_full_info()
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += memory.pss
                self.peak_one = max(self.peak_one, memory.rss)
                self.cpu[proc.pid] = times.user + times.system
            self.peak_sum = max(self.peak_sum, total)
            time.sleep(self.period)


def birdd(*args: object) -> list[str]:
    return [str(BIRDD), "--log-level", "WARNING", *map(str, args)]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def process_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and their children (a `dask worker` nanny's worker)."""
    procs = [psutil.Process(pid) for pid in pids]
    procs += [child for proc in procs for child in proc.children(recursive=True)]
    return sum(sum(proc.cpu_times()[:2]) for proc in procs)


def children_cpu() -> float:
    """CPU seconds of this process's finished children (and theirs, when waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_with_cpu(command: list[str], cluster: list[int]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of ``command``'s process tree plus the ``cluster`` processes' CPU meanwhile
    (CPU time does not depend on what else the shared machine runs; counted without sampling, which would
    take CPU from what is measured)."""
    before = process_cpu(cluster) + children_cpu()
    wall = timed(command)
    return wall, process_cpu(cluster) + children_cpu() - before


def join_soundscapes(sources: list[Path], minutes: int, target: Path) -> None:
    """Write ``minutes`` one-minute soundscapes (cycled) into one 24-bit FLAC (samples beyond full scale clip)."""
    with sf.SoundFile(target, "w", SAMPLE_RATE, 1, "PCM_24", format="FLAC") as out:
        for i in range(minutes):
            out.write(np.clip(read_audio(sources[i % len(sources)]), -1, 1))


def score_as_one_signal(model: Model, joined: Path) -> FileScores:
    """The joined file decoded block by block into one pipeline: the joined signal, unsplit."""
    pipeline, results, position = ScoringPipeline(model, WindowGrid()), [], 0
    for block in read_audio_blocks(joined, 0, None):
        results += pipeline.push(AudioBlock(position, block, str(joined)))
        position += block.size
    return file_scores(joined, results + pipeline.flush(), len(model.species))


def long_recording(args: argparse.Namespace, sources: list[Path]) -> None:
    joined = args.work / f"joined_{args.minutes}min.flac"
    if not joined.exists():
        join_soundscapes(sources, args.minutes, joined)
        print(f"wrote {joined} ({joined.stat().st_size / 1e6:.0f} MB)", flush=True)
    out = args.work / "long.parquet"
    started = time.perf_counter()
    proc = subprocess.Popen(birdd("replay", joined, "-m", args.model, "-o", out, "--no-progress"))
    sampler = TreeSampler(proc.pid)
    sampler.start()
    proc.wait()
    sampler.done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"birdd replay failed ({proc.returncode})")
    cpu = sum(sampler.cpu.values())
    per_process = ", ".join(f"{seconds:.1f}" for seconds in sampler.cpu.values())
    print(f"long: {args.minutes} min in {wall:.1f} s ({args.minutes * 60 / wall:.0f}x real time); peak memory "
          f"{sampler.peak_sum / 2**20:.0f} MB (PSS summed over {len(sampler.cpu)} processes), largest process RSS "
          f"{sampler.peak_one / 2**20:.0f} MB; CPU {cpu:.1f} s ({per_process} s per process) = {cpu / wall:.2f} "
          f"cores on average (load average {os.getloadavg()[0]:.1f}); the whole file as float32 samples would be "
          f"{args.minutes * 60 * SAMPLE_RATE * 4 / 2**20:.0f} MB", flush=True)
    table = pq.read_table(out)
    model = load_model(args.model)
    started = time.perf_counter()
    with threadpool_limits(1):  # as replay's workers: BLAS threads would change the last bits of the log-mels
        unsplit = score_as_one_signal(model, joined)
    print(f"reference (the joined file as one signal, one process): {time.perf_counter() - started:.1f} s", flush=True)
    ends = np.array([int(r.rsplit("_", 1)[1]) for r in table.column("row_id").to_pylist()])
    scores = np.stack([table.column(s.code).to_numpy() for s in model.species], axis=1)
    same_windows = np.array_equal(ends * SAMPLE_RATE, unsplit.ends)
    same_scores = scores.shape == unsplit.scores.shape and np.array_equal(scores, unsplit.scores)
    difference = float(np.abs(scores - unsplit.scores).max()) if scores.shape == unsplit.scores.shape else np.inf
    print(f"long: {len(ends)} windows; windows equal to the joined signal unsplit: {same_windows}; float32 scores "
          f"equal: {same_scores} (largest difference {difference:.2g})", flush=True)


def peak_memory(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``; its wall time (s) and the largest RSS of its process tree (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    proc.wait()
    sampler.done.set()
    sampler.join()
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, command))} failed ({proc.returncode})")
    return time.perf_counter() - started, sampler.peak_one / 2**20


def memory_by_length(args: argparse.Namespace, sources: list[Path]) -> None:
    codes = {"this code": os.environ.copy()}
    if args.reference:
        codes[f"reference {args.reference}"] = {**os.environ, "PYTHONPATH": str(args.reference.absolute())}
    species = len(load_model(args.model).species)
    print(f"| minutes | code | wall s | peak RSS MB |  ({args.model}: {species} species, submission CSV, -j 1)")
    for minutes in args.lengths:
        joined = args.work / f"joined_{minutes}min.flac"
        if not joined.exists():
            join_soundscapes(sources, minutes, joined)
        for name, env in codes.items():
            out = args.work / f"memory_{minutes}.csv"
            wall, peak = peak_memory(birdd("replay", joined, "-m", args.model, "-o", out, "-j", 1, "--no-progress"),
                                     env)
            out.unlink()
            print(f"| {minutes} | {name} | {wall:.1f} | {peak:.0f} |", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_config(folder: Path) -> dict[str, str]:
    """The environment of a `dask worker` configured as docs/scale.md says: WORKER_CONFIG in a Dask YAML file."""
    nested: dict = {}
    for key, value in WORKER_CONFIG.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "birdd.yaml").write_text(yaml.safe_dump(nested))
    return {**os.environ, "DASK_CONFIG": str(folder)}


def start_cluster(workers: int, config: Path) -> tuple[str, list[subprocess.Popen]]:
    """A `dask scheduler` and ``workers`` single-threaded `dask worker` processes on loopback."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    env = worker_config(config)
    procs += [subprocess.Popen([str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                "--no-dashboard", "--host", "127.0.0.1"], env=env, **quiet) for _ in range(workers)]
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(workers, timeout=60)
    return address, procs


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def dask_vs_pool(args: argparse.Namespace, folder: Path, files: int) -> None:
    jobs = len(os.sched_getaffinity(0))
    address, cluster = start_cluster(jobs, args.work / "dask_config")
    try:
        modes = {"pool": [], "dask local": ["--dask", "local"], "dask scheduler+workers": ["--dask", address]}
        walls: dict[str, list[float]] = {name: [] for name in modes}
        cpus: dict[str, list[float]] = {name: [] for name in modes}
        outputs = {name: args.work / f"{name.replace(' ', '_').replace('+', '_')}.csv" for name in modes}
        for i in range(args.rounds):
            line = f"round {i + 1}:"
            for name, extra in modes.items():
                pids = [p.pid for p in cluster] if "scheduler" in name else []
                wall, cpu = timed_with_cpu(birdd("replay", folder, "-m", args.model, "-o", outputs[name],
                                                 "--no-progress", *extra), pids)
                walls[name].append(wall)
                cpus[name].append(cpu)
                line += f" {name} {wall:.1f} s ({cpu:.1f} CPU s);"
            print(line, flush=True)
    finally:
        stop_all(cluster)
    pool_wall, pool_cpu = statistics.median(walls["pool"]), statistics.median(cpus["pool"])
    reference = outputs["pool"].read_bytes()
    for name in modes:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"dask: {name}: median {wall:.1f} s wall ({wall / pool_wall:.2f}x the pool), {cpu:.1f} CPU s "
              f"({cpu / pool_cpu:.2f}x) for {files} files; output bytes equal to the pool's: "
              f"{outputs[name].read_bytes() == reference}", flush=True)


def resume_after_kill(args: argparse.Namespace, folder: Path, files: int) -> None:
    full_out, out = args.work / "resume_full.csv", args.work / "resume_killed.csv"
    full = timed(birdd("replay", folder, "-m", args.model, "-o", full_out, "--no-progress", "--resume"))
    started = time.perf_counter()
    proc = subprocess.Popen(birdd("replay", folder, "-m", args.model, "-o", out, "--no-progress", "--resume"),
                            stderr=subprocess.DEVNULL)  # its orphaned pool workers report the broken pipe
    parts = journal_dir(out)
    while proc.poll() is None and len(list(parts.glob("*.npz"))) < files // 2:
        time.sleep(0.05)
    killed_after = time.perf_counter() - started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(parts.glob("*.npz")))
    resumed = timed(birdd("replay", folder, "-m", args.model, "-o", out, "--no-progress", "--resume"))
    print(f"resume: full run {full:.1f} s; killed after {killed_after:.1f} s with {done}/{files} files journalled; "
          f"resumed run {resumed:.1f} s ({resumed / full:.2f} of the full run); output bytes equal: "
          f"{out.read_bytes() == full_out.read_bytes()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["long", "dask", "resume"],
                        choices=["long", "dask", "resume", "memory"])
    parser.add_argument("--model", type=Path, default=Path("out/bench/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "birdd_archive")
    parser.add_argument("--minutes", type=int, default=180)
    parser.add_argument("--copies", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--reference", type=Path, default=None)
    args = parser.parse_args()
    sources = sorted((args.data / "test_soundscapes").glob("*.ogg"))
    if not sources:
        sys.exit(f"no soundscapes under {args.data / 'test_soundscapes'}")
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{len(os.sched_getaffinity(0))} cores; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    folder = args.work / "soundscapes"
    files = len(sources) * args.copies
    if {"dask", "resume"} & set(args.parts):
        link_copies(folder, sources, args.copies)
    if "long" in args.parts:
        long_recording(args, sources)
    if "dask" in args.parts:
        dask_vs_pool(args, folder, files)
    if "resume" in args.parts:
        resume_after_kill(args, folder, files)
    if "memory" in args.parts:
        memory_by_length(args, sources)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
