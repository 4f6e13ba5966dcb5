"""URL-source decoding cost: the ffmpeg child (what birdd runs) against PyAV in-process, file against RTSP.

Each measurement is a fresh worker process that decodes --seconds of audio to float32 mono at 32 kHz and
reports its own and its children's CPU seconds (getrusage), its own resident memory at the end (VmRSS) and
its reaped children's peak RSS:

  ffmpeg  daemon.audio.ffmpeg_child.FfmpegChild, as UrlSource runs it: the worker reads the pipe, the
          ffmpeg child decodes (its CPU and RSS are the child's; the reader's CPU is the worker's own)
  pyav    PyAV (the av wheel's bundled FFmpeg libraries) decoding and resampling in the worker itself

The worker's own CPU and RSS are counted less those of a worker that only makes the same imports (the
interpreter, numpy, av), which a daemon pays once; the import of av itself is printed as a one-off cost.

Inputs: a synthetic 48 kHz stereo FLAC of --seconds (birds-like chirps over noise), read as a file and served
by tests/rtsp_server.py (Debian's gst-rtsp-server, L16 over RTP/TCP on loopback). Every configuration runs
--repeats times, interleaved; medians are printed, with CPU as a percentage of one core at real time.

usage: python bench/streams_bench.py [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
RATE = 32_000


def worker(kind: str, url: str, seconds: float) -> None:
    """Decode ``seconds`` of ``url`` with ``kind`` and print the rusage as JSON."""
    wanted = int(seconds * RATE)
    got = 0
    if kind == "ffmpeg":
        from daemon.audio.ffmpeg_child import FfmpegChild

        child = FfmpegChild(url)
        while got < wanted and not child.ended:
            got += child.read(0.1).size
        child.close()
    elif kind == "pyav":
        import av

        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        container = av.open(url, options=options)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                got += out.to_ndarray().size
            if got >= wanted:
                break
        container.close()
    elif kind == "baseline-pyav":  # the imports only
        import av
    else:  # baseline-ffmpeg
        from daemon.audio import ffmpeg_child  # noqa: F401
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"samples": got, "self_cpu": own.ru_utime + own.ru_stime, "self_rss_mb": _rss_mb(),
                      "child_cpu": children.ru_utime + children.ru_stime,
                      "child_rss_mb": children.ru_maxrss / 1024}))


def _rss_mb() -> float:
    """This process's resident memory now (VmRSS), MB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def run_worker(kind: str, url: str, seconds: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, url, str(seconds)], capture_output=True,
                         text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def synthetic_flac(path: Path, seconds: float) -> Path:
    rng = np.random.default_rng(7)
    n = int(seconds * 48_000)
    t = np.arange(n) / 48_000
    chirp = np.sin(2 * np.pi * (3000 + 1500 * np.sin(2 * np.pi * 3 * t)) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    left = 0.2 * chirp + 0.02 * rng.standard_normal(n)
    sf.write(path, np.stack([left, np.roll(left, 480)], axis=1), 48_000, subtype="PCM_16")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], float(args.worker[2]))
        return
    work = Path(tempfile.mkdtemp(prefix="birdd_streams_bench_"))
    flac = synthetic_flac(work / "birds.flac", args.seconds + 5)
    wav = work / "birds.wav"
    sf.write(wav, sf.read(flac)[0], 48_000, subtype="PCM_16")
    port = free_port()
    server = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests" / "rtsp_server.py"), str(port), str(wav)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    inputs = {"file": str(flac), "rtsp": f"rtsp://127.0.0.1:{port}/birds"}
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        baselines = {kind: [run_worker(f"baseline-{kind}", "", 0) for _ in range(args.repeats)]
                     for kind in ("ffmpeg", "pyav")}
        for _ in range(args.repeats):
            for kind in ("ffmpeg", "pyav"):
                for name, url in inputs.items():
                    started = time.monotonic()
                    result = run_worker(kind, url, args.seconds)
                    result["wall"] = time.monotonic() - started
                    results.setdefault((kind, name), []).append(result)
    finally:
        server.terminate()
        server.wait(5)
    base_cpu = {k: statistics.median(r["self_cpu"] for r in v) for k, v in baselines.items()}
    base_rss = {k: statistics.median(r["self_rss_mb"] for r in v) for k, v in baselines.items()}
    print(f"decoding {args.seconds:g} s of 48 kHz stereo to 32 kHz mono float32, median of {args.repeats}; "
          f"importing av costs {base_rss['pyav'] - base_rss['ffmpeg']:.1f} MB RSS once")
    print(f"{'decoder':8} {'input':6} {'CPU % of a core':>16} {'in the worker':>16} {'RSS per stream MB':>18}")
    for (kind, name), runs in results.items():
        audio_s = [r["samples"] / RATE for r in runs]
        own = [max(0.0, r["self_cpu"] - base_cpu[kind]) for r in runs]
        cpu = statistics.median((o + r["child_cpu"]) / a * 100 for o, r, a in zip(own, runs, audio_s, strict=True))
        reader = statistics.median(o / a * 100 for o, a in zip(own, audio_s, strict=True))
        rss = statistics.median(r["child_rss_mb"] + max(0.0, r["self_rss_mb"] - base_rss[kind]) for r in runs)
        print(f"{kind:8} {name:6} {cpu:16.2f} {reader:16.2f} {rss:18.1f}")


if __name__ == "__main__":
    main()
