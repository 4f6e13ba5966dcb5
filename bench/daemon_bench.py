"""The daemon under load, against a real mosquitto on loopback.

realtime: replay soundscapes at real time for --minutes; report CPU share of one core, RSS, and
          window-end-to-MQTT latency (subscriber receive time minus the detection's `end`).
soak:     push --hours of audio through the daemon path as fast as it goes; report RSS at start and
          end (flat memory), windows expected vs scored (lost windows) and detections produced vs
          received (lost detections).

usage: python bench/daemon_bench.py realtime|soak --model out/model [--data ../shared/bench206] [--minutes 3]
       [--hours 24] [--threshold 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
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


class Collector:
    """Subscribes to the station's detections and stats; stamps each detection's arrival."""

    def __init__(self, port: int) -> None:
        self.latencies: list[float] = []
        self.ids: set[str] = set()
        self.stats: dict = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe([("birdd/bench/detections", 1),
                                                            ("birdd/bench/status/stats", 0)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        payload = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("/stats"):
                self.stats = payload
                return
            self.ids.add(payload["detection_id"])
            end = datetime.fromisoformat(payload["end"].replace("Z", "+00:00")).timestamp()
            self.latencies.append(now - end)


def write_config(path: Path, model: Path, files: list[Path], port: int, realtime: bool, threshold: float,
                 outbox: Path) -> None:
    files_toml = ", ".join(f'"{f}"' for f in files)
    path.write_text(f"""[station]
name = "bench"
[audio]
source = "file"
files = [{files_toml}]
realtime = {str(realtime).lower()}
loop = true
[model]
path = "{model}"
[detection]
threshold = {threshold}
[mqtt]
port = {port}
status_interval_s = 1.0
[outbox]
path = "{outbox}"
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["realtime", "soak"])
    parser.add_argument("--model", type=Path, default=Path("out/model"))
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--threshold", type=float, default=0.3)
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
        collector = Collector(port)
        config = tmp / "config.toml"
        write_config(config, args.model.resolve(), files, port, args.mode == "realtime", args.threshold,
                     tmp / "outbox.sqlite")
        birdd = str(Path(sys.executable).with_name("birdd"))
        log = tmp / "daemon.log"
        daemon = subprocess.Popen([birdd, "run", "-c", str(config)], stderr=log.open("w"))
        try:
            report = run_realtime(daemon, collector, args) if args.mode == "realtime" else run_soak(
                daemon, collector, args)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(10)
        final = re.search(r"birdd stopped: ([\d.]+) s of audio, (\d+) windows, (\d+) detections, (\d+) awaiting",
                          log.read_text())
        audio, windows, produced, backlog = float(final[1]), int(final[2]), int(final[3]), int(final[4])
        time.sleep(1.0)
        expected = int(audio // 5) + (audio % 5 >= 2.5)  # 60-s files: the stream is a whole number of windows
        report.append(f"{audio / 3600:.2f} h of audio: windows expected {expected}, scored {windows}, "
                      f"lost {expected - windows}")
        report.append(f"detections produced {produced}, received {len(collector.ids)}, "
                      f"lost {produced - len(collector.ids)} (outbox backlog at stop {backlog})")
        collector.client.loop_stop()
        broker.terminate()
        broker.wait(5)
    print("\n".join(report))


def run_realtime(daemon: subprocess.Popen, collector: Collector, args) -> list[str]:
    time.sleep(5.0)  # start-up (imports, model load) excluded from the CPU share
    cpu0, _ = proc_stats(daemon.pid)
    started = time.monotonic()
    peak = 0
    while time.monotonic() - started < args.minutes * 60:
        time.sleep(1.0)
        peak = max(peak, proc_stats(daemon.pid)[1])
    cpu1, rss = proc_stats(daemon.pid)
    wall = time.monotonic() - started
    lat = sorted(collector.latencies)
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    return [f"real-time replay for {wall / 60:.1f} min: CPU {100 * (cpu1 - cpu0) / wall:.2f} % of one core, "
            f"RSS {rss / 1024:.0f} MB (peak {peak / 1024:.0f} MB)",
            f"window end -> MQTT receive over {len(lat)} detections: p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, "
            f"max {p(1.0):.0f} ms"]


def run_soak(daemon: subprocess.Popen, collector: Collector, args) -> list[str]:
    target = args.hours * 3600
    samples = []
    started = time.monotonic()
    while True:
        time.sleep(2.0)
        if daemon.poll() is not None:
            sys.exit("daemon exited during the soak")
        audio = collector.stats.get("audio_seconds", 0.0)
        samples.append((audio, proc_stats(daemon.pid)[1]))
        if audio >= target:
            break
    stats = collector.stats
    wall = time.monotonic() - started
    early = [rss for audio, rss in samples if audio >= 0.1 * target][:3] or [samples[0][1]]
    return [f"soak: {stats['audio_seconds'] / 3600:.1f} h of audio in {wall:.0f} s "
            f"({stats['audio_seconds'] / wall:.0f}x real time)",
            f"RSS at 10 % {statistics.median(early) / 1024:.0f} MB, at end {samples[-1][1] / 1024:.0f} MB, "
            f"max {max(r for _, r in samples) / 1024:.0f} MB; audio overruns {stats['audio_overruns']}, "
            f"gaps {stats['audio_gaps']}"]


if __name__ == "__main__":
    main()
