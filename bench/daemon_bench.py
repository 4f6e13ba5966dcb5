"""The daemon under load, against a real mosquitto on loopback.

realtime: replay soundscapes at real time for --minutes with two daemons side by side, started together on
          the same files: the reference (detection store and clips off) and the station (store and clips on).
          For each: CPU share of one core, RSS, bytes written to disk, window-end-to-MQTT latency (subscriber
          receive time minus the detection's `end`); for the station also when each clip landed on disk
          (file time minus the window's end; the clip holds clips.margin_s of audio after the end).
soak:     push --hours of audio through the daemon path as fast as it goes, store and clips on with a
          --clip-cap-mb cap; report RSS at start and end (flat memory), windows expected vs scored (lost
          windows), detections produced vs received on MQTT vs stored, and the largest size the clips
          directory reached (sampled every 0.1 s) against the cap.

usage: python bench/daemon_bench.py realtime|soak --model out/model [--data ../shared/bench206] [--minutes 3]
       [--hours 24] [--threshold 0.3] [--clip-cap-mb 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds of the process and its threads, RSS in kB)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    return cpu, rss


def bytes_written(pid: int) -> int:
    """Bytes the process caused to be sent to the storage layer (/proc/<pid>/io write_bytes)."""
    return int(re.search(r"^write_bytes:\s+(\d+)", Path(f"/proc/{pid}/io").read_text(), re.M).group(1))


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "none"
    at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return f"p50 {at(0.5) * 1000:.0f} ms, p99 {at(0.99) * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"


class Collector:
    """Subscribes to the stations' detections and stats; stamps each detection's arrival, per station."""

    def __init__(self, port: int, stations: list[str]) -> None:
        self.latencies: dict[str, list[float]] = {name: [] for name in stations}
        self.ids: dict[str, set[str]] = {name: set() for name in stations}
        self.stats: dict[str, dict] = {name: {} for name in stations}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(f"birdd/{name}/detections", 1) for name in stations] + [(f"birdd/{name}/status/stats", 0)
                                                                       for name in stations])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        payload = json.loads(msg.payload)
        station = msg.topic.split("/")[1]
        if msg.topic.endswith("/stats"):
            self.stats[station] = payload
            return
        self.ids[station].add(payload["detection_id"])
        self.latencies[station].append(now - epoch(payload["end"]))


class Station:
    """One ``birdd run`` with its own config, outbox, store and clips under ``workdir``."""

    def __init__(self, name: str, workdir: Path, args, files: list[Path], port: int, realtime: bool,
                 clips: dict | None) -> None:
        self.name = name
        self.workdir = workdir
        workdir.mkdir()
        self.store = workdir / "detections.sqlite"
        self.clips_dir = workdir / "clips"
        files_toml = ", ".join(f'"{f}"' for f in files)
        clip_keys = "".join(f"{key} = {json.dumps(value)}\n" for key, value in (clips or {}).items())
        (workdir / "config.toml").write_text(f"""[station]
name = "{name}"
[audio]
source = "file"
files = [{files_toml}]
realtime = {str(realtime).lower()}
loop = true
[model]
path = "{args.model.resolve()}"
[detection]
threshold = {args.threshold}
[mqtt]
port = {port}
status_interval_s = 1.0
[outbox]
path = "{workdir / 'outbox.sqlite'}"
[store]
enabled = {str(clips is not None).lower()}
path = "{self.store}"
[clips]
enabled = {str(clips is not None).lower()}
dir = "{self.clips_dir}"
{clip_keys}""")
        self.log = workdir / "daemon.log"
        birdd = str(Path(sys.executable).with_name("birdd"))
        self.process = subprocess.Popen([birdd, "run", "-c", str(workdir / "config.toml")],
                                        stderr=self.log.open("w"))

    def stop(self) -> tuple[float, int, int, int]:
        """SIGTERM; (seconds of audio, windows, detections, outbox backlog) from the last log line."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        final = re.search(r"birdd stopped: ([\d.]+) s of audio, (\d+) windows, (\d+) detections, (\d+) awaiting",
                          self.log.read_text())
        if final is None:
            sys.exit(f"{self.name}: no final statistics in {self.log}:\n{self.log.read_text()[-2000:]}")
        return float(final[1]), int(final[2]), int(final[3]), int(final[4])

    def clips_bytes(self) -> int:
        total = 0
        for root, _, names in os.walk(self.clips_dir):
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # deleted while walking
                    total += os.stat(os.path.join(root, name)).st_size
        return total

    def stored(self) -> list[tuple[float, str | None, int]]:
        """(window end epoch, clip name, clip bytes) of every stored row."""
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT end_epoch, clip, clip_bytes FROM detections").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["realtime", "soak"])
    parser.add_argument("--model", type=Path, default=Path("out/model"))
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--clip-cap-mb", type=float, default=50.0)
    args = parser.parse_args()
    files = sorted((args.data / "test_soundscapes").glob("*.ogg"))
    if not files or shutil.which("mosquitto") is None:
        sys.exit("needs test soundscapes under --data and mosquitto on PATH")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            if args.mode == "realtime":
                report = run_realtime(tmp, args, files, port)
            else:
                report = run_soak(tmp, args, files, port)
        finally:
            broker.terminate()
            broker.wait(5)
    print("\n".join(report))


def run_realtime(tmp: Path, args, files: list[Path], port: int) -> list[str]:
    collector = Collector(port, ["reference", "station"])
    stations = [Station("reference", tmp / "reference", args, files, port, True, None),
                Station("station", tmp / "station", args, files, port, True, {})]
    report = []
    try:
        time.sleep(5.0)  # start-up (imports, model load) excluded from the CPU share
        before = {s.name: (proc_stats(s.process.pid)[0], bytes_written(s.process.pid)) for s in stations}
        started = time.monotonic()
        peak = dict.fromkeys(before, 0)
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(1.0)
            for s in stations:
                peak[s.name] = max(peak[s.name], proc_stats(s.process.pid)[1])
        wall = time.monotonic() - started
        shares = {}
        for s in stations:
            cpu, rss = proc_stats(s.process.pid)
            shares[s.name] = (100 * (cpu - before[s.name][0]) / wall, rss / 1024)
            written = bytes_written(s.process.pid) - before[s.name][1]
            n = max(1, len(collector.ids[s.name]))
            report.append(f"{s.name}: real-time replay for {wall / 60:.1f} min: CPU {shares[s.name][0]:.2f} % of one "
                          f"core, RSS {rss / 1024:.0f} MB (peak {peak[s.name] / 1024:.0f} MB), disk writes "
                          f"{written / 1024:.0f} KB ({written / 1024 / n:.0f} KB per detection)")
            report.append(f"{s.name}: window end -> MQTT receive over {len(collector.latencies[s.name])} detections: "
                          f"{percentiles(collector.latencies[s.name])}")
        report.append(f"station - reference: CPU {shares['station'][0] - shares['reference'][0]:+.2f} points of one "
                      f"core, RSS {shares['station'][1] - shares['reference'][1]:+.0f} MB")
    finally:
        finals = {s.name: s.stop() for s in stations}
        collector.client.loop_stop()
    rows = stations[1].stored()
    landed = [os.stat(stations[1].clips_dir / clip).st_mtime - end for end, clip, nbytes in rows if clip and nbytes]
    report.append(f"station: {len(rows)} detections stored of {finals['station'][2]} produced, {len(landed)} clips; "
                  f"clip on disk after the window's end (1-s margin included): {percentiles(landed)}")
    return report


def run_soak(tmp: Path, args, files: list[Path], port: int) -> list[str]:
    collector = Collector(port, ["soak"])
    station = Station("soak", tmp / "soak", args, files, port, False,
                      {"max_total_mb": args.clip_cap_mb, "keep_per_species_per_day": 0, "min_free_mb": 0.0})
    target = args.hours * 3600
    samples = []
    largest = [0]
    sampling = threading.Event()

    def sample_clips() -> None:
        while not sampling.wait(0.1):
            largest[0] = max(largest[0], station.clips_bytes())

    sampler = threading.Thread(target=sample_clips, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        while True:
            time.sleep(2.0)
            if station.process.poll() is not None:
                sys.exit(f"daemon exited during the soak:\n{station.log.read_text()[-2000:]}")
            audio = collector.stats["soak"].get("audio_seconds", 0.0)
            samples.append((audio, proc_stats(station.process.pid)[1]))
            if audio >= target:
                break
        stats = collector.stats["soak"]
        wall = time.monotonic() - started
    finally:
        audio, windows, produced, backlog = station.stop()
        sampling.set()
        sampler.join()
    time.sleep(1.0)
    collector.client.loop_stop()
    early = [rss for a, rss in samples if a >= 0.1 * target][:3] or [samples[0][1]]
    rows = station.stored()
    expected = int(audio // 5) + (audio % 5 >= 2.5)  # 60-s files: the stream is a whole number of windows
    received = len(collector.ids["soak"])
    clip_log = re.findall(r"clips: the audio of .* is no longer in the ring buffer", station.log.read_text())
    return [f"soak: {stats['audio_seconds'] / 3600:.1f} h of audio in {wall:.0f} s "
            f"({stats['audio_seconds'] / wall:.0f}x real time)",
            f"RSS at 10 % {statistics.median(early) / 1024:.0f} MB, at end {samples[-1][1] / 1024:.0f} MB, "
            f"max {max(r for _, r in samples) / 1024:.0f} MB; audio overruns {stats['audio_overruns']}, "
            f"gaps {stats['audio_gaps']}",
            f"{audio / 3600:.2f} h of audio: windows expected {expected}, scored {windows}, lost {expected - windows}",
            f"detections produced {produced}, received on MQTT {received}, lost {produced - received} "
            f"(outbox backlog at stop {backlog}); stored {len(rows)}, lost {produced - len(rows)}",
            f"clips: cap {args.clip_cap_mb:g} MB, largest the directory was {largest[0] / MB:.3f} MB (sampled every "
            f"0.1 s: {'within' if largest[0] <= args.clip_cap_mb * MB else 'OVER'} the cap), "
            f"{station.clips_bytes() / MB:.3f} MB at the end; {sum(1 for r in rows if r[1])} rows keep a "
            f"clip; {len(clip_log)} clips missed (audio gone from the ring)"]


if __name__ == "__main__":
    main()
