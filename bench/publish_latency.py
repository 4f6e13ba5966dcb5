"""Where a detection's publish latency goes, stage by stage, with N sources in one daemon.

Runs the daemon's Service in this process (N file sources replayed at real time, looped; store and clips on;
a real mosquitto on loopback) with timestamps added around its stages, and prints, over the detections of
the run (the first 8 s of start-up left out), the median and 99th percentile of each step and of the total
from the window's end (its last sample's wall-clock time, the payload's ``end``):

  end -> read         the pipeline thread read the block that completed the window (the source's pacing, the
                      thread's wake-up)
  read -> queued      scoring: encoder, pooling, head, filters, detection policy
  queued -> outbox    waiting in the results queue for the one sink thread (other sources' detections first)
  outbox put          the outbox commit (fsynced)
  other sinks         the detection store, clips scheduling, the log
  -> published        the MQTT thread took the row from the outbox and handed it to paho
  -> acked            the broker's PUBACK came back
  -> received         a subscriber on the broker got it (about when acked)

usage: PYTHONPATH=. python bench/publish_latency.py [--sources 8] [--seconds 40] [--model stsg|birdnet]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from daemon_bench import free_port  # bench/ is on the path of a script run from it
from sources_bench import THRESHOLDS, models

from daemon.config import config_from_dict
from daemon.service import service, workers
from daemon.service.metrics import PublishLatency
from daemon.sinks.outbox import Outbox
from trainer.synthetic_corpus import write_corpus

STARTUP_S = 8.0
STEPS = [("end", "read", "end -> read"), ("read", "queued", "read -> queued"),
         ("queued", "OutboxSink>", "queued -> outbox"), ("OutboxSink>", "OutboxSink<", "outbox put"),
         ("OutboxSink<", "LogSink<", "other sinks"), ("LogSink<", "published", "-> published"),
         ("published", "acked", "-> acked"), ("acked", "received", "-> received")]


class Stamps:
    """Wall-clock times per detection id and stage, from any thread."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def put(self, detection_id: str, stage: str, at: float | None = None) -> None:
        with self._lock:
            self.times[detection_id].setdefault(stage, time.time() if at is None else at)


def instrument(stamps: Stamps) -> None:
    """Wrap the stage boundaries of the service's classes (this process only) to stamp each detection."""
    to_wall = time.time() - time.monotonic()
    emit, call, pending, acked = (workers.PipelineWorker._emit, workers.SinkWorker._call, Outbox.pending,
                                  PublishLatency.__call__)

    def stamped_emit(self, results):
        for result in results:
            for detection in result.detections:
                stamps.put(detection.detection_id, "read", result.read_at + to_wall)
                stamps.put(detection.detection_id, "queued")
        emit(self, results)

    def stamped_call(self, sink, method, item):
        detection_id = getattr(item, "detection_id", None)
        if detection_id:
            stamps.put(detection_id, f"{type(sink).__name__}>")
        call(self, sink, method, item)
        if detection_id:
            stamps.put(detection_id, f"{type(sink).__name__}<")

    def stamped_pending(self, *args, **kwargs):
        rows = pending(self, *args, **kwargs)
        for _, payload in rows:
            stamps.put(payload["detection_id"], "published")
        return rows

    def stamped_acked(self, payload):
        stamps.put(payload["detection_id"], "acked")
        acked(self, payload)

    workers.PipelineWorker._emit, workers.SinkWorker._call = stamped_emit, stamped_call
    Outbox.pending, PublishLatency.__call__ = stamped_pending, stamped_acked


def quantiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, int(0.99 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--model", default="stsg", choices=["stsg", "birdnet"])
    args = parser.parse_args()
    stamps = Stamps()
    instrument(stamps)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = write_corpus(tmp / "corpus", n_species=6, clips_per_species=4, train_soundscapes=2,
                              test_soundscapes=args.sources, soundscape_seconds=60, seed=3)
        soundscapes = sorted((corpus / "test_soundscapes").glob("*.ogg"))
        bundle = models(tmp, [args.model], corpus)[args.model]
        port = free_port()
        (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
        time.sleep(0.5)

        def received(client, userdata, message) -> None:
            payload = json.loads(message.payload)
            stamps.put(payload["detection_id"], "received")
            stamps.put(payload["detection_id"], "end",
                       datetime.fromisoformat(payload["end"].replace("Z", "+00:00")).timestamp())

        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="latency-bench")
        subscriber.on_message = received
        subscriber.on_connect = lambda client, *_: client.subscribe("birdd/bench/detections", qos=1)
        subscriber.connect("127.0.0.1", port)
        subscriber.loop_start()
        config = config_from_dict({
            "station": {"name": "bench"}, "model": {"path": str(bundle)},
            "detection": {"threshold": THRESHOLDS[args.model]},
            "mqtt": {"host": "127.0.0.1", "port": port, "ha_discovery": False},
            "outbox": {"path": str(tmp / "outbox.sqlite")}, "store": {"path": str(tmp / "detections.sqlite")},
            "clips": {"dir": str(tmp / "clips"), "min_free_mb": 0.0},
            "audio": {"source": "file", "realtime": True, "loop": True,
                      "sources": [{"name": f"s{i}", "files": [str(path)]} for i, path in enumerate(soundscapes)]}})
        daemon = service.Service(config)
        threading.Timer(args.seconds, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        started = time.time()
        daemon.run()
        subscriber.loop_stop()
        broker.terminate()
        broker.wait(5)
    rows = [t for t in stamps.times.values()
            if all(stage in t for step in STEPS for stage in step[:2]) and t["end"] > started + STARTUP_S]
    print(f"{args.model}, {args.sources} sources, {len(rows)} detections: step p50 / p99 (ms), total from the "
          "window's end p50 / p99 (ms)")
    for begin, end, label in STEPS:
        p50, p99 = quantiles([1000 * (t[end] - t[begin]) for t in rows])
        total50, total99 = quantiles([1000 * (t[end] - t["end"]) for t in rows])
        print(f"| {label} | {p50:.1f} / {p99:.1f} | {total50:.1f} / {total99:.1f} |")


if __name__ == "__main__":
    main()
