"""Every outbound target down for minutes while detections keep coming, a SIGKILL in the middle, then back.

A real ``birdd run`` (a synthetic soundscape replayed at real time in a loop, one species, a detection a second)
feeds a real mosquitto, a webhook receiver that checks the HMAC signature, a webhook that answers 400 forever, the
BirdWeather test server and an Apprise ``json://`` receiver (tests/http_receivers.py, on loopback). After a warm-up
every target goes down at once for ``--minutes``: the broker is stopped (connections refused) and the HTTP
receivers answer 503 (so that every retry is seen and timed). Halfway through, the daemon is SIGKILLed and started
again. Then everything comes back, and the script waits until each target holds every detection of the detection
store made up to then (BirdWeather: every one whose clip was kept).

Reported per target: detections expected and received (first arrivals in store order, ids as stored, duplicates
counted), the largest delay from a detection's end to its first arrival, the retry intervals the HTTP receivers
saw during the outage (before and after the SIGKILL: each process starts its back-off at 1 s), and how long after
the target came back its first delivery arrived (at most ``--retry-max-s``, the cap of the back-off). The
refusing webhook must have been tried on every row and refused each (the stats' ``refused`` counter). Exits 1 if
any promise is broken.

usage: python bench/outage.py [--minutes 3] [--retry-max-s 60] [--model BUNDLE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

CHECKOUT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(CHECKOUT / "tests"))  # the test servers and the daemon subprocess helper

from conftest import Broker  # noqa: E402
from daemon_process import Daemon  # noqa: E402
from http_receivers import BirdWeatherServer, Receiver  # noqa: E402
from model_fixtures import SMALL_RECIPE  # noqa: E402
from test_outbound_targets_survive_outages import TOKEN, outage_config, signed  # noqa: E402

from daemon.outbound.birdweather import local_iso  # noqa: E402
from daemon.outbound.notify import target_name  # noqa: E402
from trainer.synthetic_corpus import write_corpus  # noqa: E402
from trainer.train import train  # noqa: E402

WARM_UP_DETECTIONS = 3
RECOVERY_MARGIN_S = 60.0
"""after the cap: how much longer every target may take to catch up before the run fails"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Switch:
    """An HTTP receiver's answer while up (``answer``) or down (503)."""

    def __init__(self, answer) -> None:
        self.up = True
        self._answer = answer

    def __call__(self, request):
        return self._answer(request) if self.up else (503, b'{"success": false, "message": "down"}')


class MqttLog:
    """Detections on the broker with their arrival times, and the last stats message (persistent session)."""

    def __init__(self, port: int) -> None:
        self.arrivals: list[tuple[float, dict]] = []
        self.stats: dict = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="outage-bench", clean_session=False)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.on_connect = lambda c, *_: c.subscribe([("birdd/out/detections", 1), ("birdd/out/status/stats",
                                                                                           0)])
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now, payload = time.time(), json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("/stats"):
                self.stats = payload
            else:
                self.arrivals.append((now, payload))

    def detections(self) -> list[tuple[float, dict]]:
        with self._lock:
            return list(self.arrivals)


def store_rows(path: Path) -> list[tuple]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, detection_id, start_epoch, end_epoch, local_time, clip_bytes "
                            "FROM detections ORDER BY id").fetchall()
    finally:
        conn.close()


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timeout after {timeout:.0f} s: {what}")
        time.sleep(0.2)


def make_model(work: Path, given: Path | None) -> tuple[Path, Path]:
    corpus = write_corpus(work / "corpus", n_species=6, clips_per_species=4, train_soundscapes=2,
                          test_soundscapes=2, soundscape_seconds=20, seed=3)
    model = given or train(corpus, work / "model", SMALL_RECIPE, progress=False)
    return model, sorted((corpus / "test_soundscapes").iterdir())[0]


def intervals(times: list[float], start: float, end: float) -> list[float]:
    """Gaps between consecutive attempts inside [start, end)."""
    inside = [t for t in times if start <= t < end]
    return [b - a for a, b in itertools.pairwise(inside)]


def show(gaps: list[float]) -> str:
    return " ".join(f"{g:.1f}" for g in gaps) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="How long every target is down.")
    parser.add_argument("--retry-max-s", type=float, default=60.0, help="Every target's back-off cap.")
    parser.add_argument("--model", type=Path, help="A model bundle (default: train the tests' small one).")
    parser.add_argument("--keep", type=Path, help="Work in this folder and leave it (default: a temporary one).")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="birdd-outage-"))
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    model, soundscape = make_model(work, args.model)
    print(f"model and audio ready in {time.monotonic() - began:.0f} s ({work})", flush=True)

    broker = Broker(work / "broker", free_port())
    broker.start()
    switches = {"webhook:home": Switch(signed), "birdweather": None, "notifications": Switch(lambda r: (200, b"{}"))}
    hook, notify = Receiver(switches["webhook:home"]), Receiver(switches["notifications"])
    refuser = Receiver(lambda r: (400, b'{"error": "never"}'))
    bw = BirdWeatherServer(TOKEN)
    switches["birdweather"] = bw_switch = Switch(bw.answer)
    bw.answer = bw_switch
    mqtt_log = MqttLog(broker.port)
    path = outage_config(work, model, soundscape, broker, hook, refuser, bw, notify, retry_max_s=args.retry_max_s,
                         reconnect_min_s=1.0, status_interval_s=2.0, clips_mb=2048.0)
    store = work / "config.detections.sqlite"
    log = work / "daemon.log"
    daemon = Daemon(path, log)
    failures: list[str] = []
    try:
        daemon.wait_for_log("birdd running", timeout=60)
        wait(lambda: min(len(hook.accepted()), len(bw.detections), len(notify.accepted()),
                         len(mqtt_log.detections())) >= WARM_UP_DETECTIONS, 60, "the first detections everywhere")

        down_at = time.time()
        broker.stop()
        for switch in switches.values():
            switch.up = False
        print(f"every target down for {args.minutes:g} min", flush=True)
        time.sleep(args.minutes * 30)
        killed_at = time.time()
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        daemon.close()
        daemon = Daemon(path, log)
        daemon.wait_for_log("birdd running", timeout=60)
        print(f"SIGKILLed and started again at {killed_at - down_at:.0f} s", flush=True)
        time.sleep(max(0.0, down_at + args.minutes * 60 - time.time()))
        up_at = time.time()
        broker.start()
        for switch in switches.values():
            switch.up = True
        print("every target back", flush=True)

        rows = store_rows(store)
        with_clip = [row for row in rows if row[5] > 0]
        ids = [row[1] for row in rows]
        received = {
            "mqtt": lambda: [(t, p["detection_id"]) for t, p in mqtt_log.detections()],
            "webhook:home": lambda: [(r.received, r.json()["detection_id"]) for r in hook.accepted()],
            "notifications": lambda: [(r.received, re.search(r"at (\S+)$", r.json()["message"]).group(1))
                                      for r in notify.accepted()],
            "birdweather": lambda: [(r.received, r.json()["timestamp"][:19]) for r in bw.accepted("/api/v1/stations/"
                                                                                             f"{TOKEN}/detections")],
        }
        expected = {"mqtt": ids, "webhook:home": ids, "notifications": [row[4] for row in rows],
                    "birdweather": [local_iso(row[2])[:19] for row in with_clip]}  # to the second
        ends = {"mqtt": [row[3] for row in rows], "webhook:home": [row[3] for row in rows],
                "notifications": [row[3] for row in rows], "birdweather": [row[3] for row in with_clip]}
        wait(lambda: all(set(expected[name]) <= {key for _, key in read()} for name, read in received.items()),
             args.retry_max_s + RECOVERY_MARGIN_S, "every target: every detection made up to its return")
        caught_up = time.time()
        wait(lambda: refuser.attempts >= len(ids), 60, "the refusing webhook: every row tried")
        wait(lambda: mqtt_log.stats.get("outbound", {}).get("webhook:refuser", {}).get("refused", 0) >= len(ids),
             60, "the refusing webhook's refusals in the stats")

        print(f"\n{len(rows)} detections made up to the return ({len(with_clip)} with a clip); outage "
              f"{args.minutes:g} min, SIGKILL at {killed_at - down_at:.0f} s, back-off cap {args.retry_max_s:g} s; "
              f"every target caught up {caught_up - up_at:.0f} s after the return\n")
        print("| target | expected | received (first arrivals) | duplicates | in store order | max delay | "
              "retry intervals before the SIGKILL (s) | after it (s) | first delivery after the return |")
        print("|---|---|---|---|---|---|---|---|---|")
        attempts = {"webhook:home": hook.attempt_times, "notifications": notify.attempt_times,
                    "birdweather": bw.attempt_times}
        for name, read in received.items():
            arrivals = read()
            want = set(expected[name])
            first: dict[str, float] = {}
            for at, key in arrivals:
                first.setdefault(key, at)
            order = [key for key in first if key in want]
            in_order = order == expected[name]
            duplicates = sum(1 for _, key in arrivals if key in want) - len(want)
            delay = max(first[key] - end for key, end in zip(expected[name], ends[name], strict=True))
            after_return = min(at for at, _ in arrivals if at >= up_at) - up_at
            times = attempts.get(name, [])
            before, after = intervals(times, down_at, killed_at), intervals(times, killed_at, up_at)
            print(f"| {name} | {len(want)} | {len(want & set(first))} | {duplicates} | {'yes' if in_order else 'NO'} "
                  f"| {delay:.0f} s | {show(before)} | {show(after)} | {after_return:.1f} s |")
            if not in_order:
                failures.append(f"{name}: not in store order")
            if max(before + after, default=0.0) > args.retry_max_s + 5:
                failures.append(f"{name}: a retry interval above the cap")
            if after_return > args.retry_max_s + 5:
                failures.append(f"{name}: first delivery {after_return:.0f} s after the return")
        for _, payload in mqtt_log.detections() + [(0, r.json()) for r in hook.accepted()]:
            stored = {row[1]: row[0] for row in rows}
            if payload["detection_id"] in stored and payload["id"] != stored[payload["detection_id"]]:
                failures.append(f"detection {payload['detection_id']}: id {payload['id']}, stored as "
                                f"{stored[payload['detection_id']]}")
        time.sleep(5)  # the stats of the caught-up daemon
        outbound = mqtt_log.stats["outbound"]
        print(f"\nwebhook:refuser: {refuser.attempts} attempts, none accepted, refused "
              f"{outbound['webhook:refuser']['refused']} in the stats (>= {len(ids)} rows)")
        print("stats per target at the end:", json.dumps({name: {k: v for k, v in counts.items() if k != "alerts"}
                                                for name, counts in outbound.items()}))
        notifications = target_name(f"json://127.0.0.1:{notify.port}/n")
        assert notifications in outbound, outbound
        if refuser.accepted():
            failures.append("the refusing webhook accepted something")
        if TOKEN in log.read_text(errors="replace"):
            failures.append("the BirdWeather token is in the daemon's log")
    finally:
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(30)
        daemon.close()
        mqtt_log.client.loop_stop()
        for server in (hook, refuser, notify, bw):
            server.stop()
        broker.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if code != 0:
        failures.append(f"the daemon exited {code} at SIGTERM")
    print(f"\ntotal {time.monotonic() - began:.0f} s; " + ("all promises kept" if not failures else
                                                           "FAILED: " + "; ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
