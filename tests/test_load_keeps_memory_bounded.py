"""Load: a burst of detections keeps memory flat and every detection in order; a broker that never
acknowledges (a QoS 1 stall) does not make memory grow.

Burst: ``birdd run`` replays a soundscape in a loop as fast as it goes with threshold 0 (every species of
every window is a detection) until a subscriber holds ``BIRDD_BURST_DETECTIONS`` of them (2,000 in the
suite; ``bench/robustness.py load`` asks for 10,000); the daemon's resident memory is sampled throughout.

Stall: the broker is a tiny TCP peer on loopback that completes CONNECT and answers PINGREQ but never
sends a PUBACK. birdd keeps at most ``MAX_INFLIGHT`` detections in flight, the rest wait in the outbox
on disk, and resident memory stays flat while the backlog grows by thousands.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HOST
from daemon_process import Daemon, write_config

from daemon.sinks.mqtt import MAX_INFLIGHT

pytestmark = pytest.mark.integration

BURST = int(os.environ.get("BIRDD_BURST_DETECTIONS", "2000"))
STALL_S = 20.0
RSS_GROWTH_LIMIT_MB = 25.0
"""resident memory may grow this much from the first sample after start-up to the peak"""
RESULTS: dict[str, float] = {}
"""the last run's figures, for bench/robustness.py"""


VM_RSS = re.compile(r"^VmRSS:\s+(\d+) kB$", re.MULTILINE)
"""resident memory in ``/proc/<pid>/status``; a process that has ended (a zombie not yet reaped) has none"""


class RssSampler:
    """Samples a process's resident memory (MB) every ``period`` seconds on a thread, until stopped or the
    process ends."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        self.samples: list[tuple[float, float]] = []
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _run(self, period: float) -> None:
        started = time.monotonic()
        while not self._stop.wait(period):
            try:
                status = Path(f"/proc/{self._pid}/status").read_text()
            except OSError:  # ended and reaped
                return
            rss = VM_RSS.search(status)
            if rss is None:  # ended, not yet reaped
                return
            self.samples.append((time.monotonic() - started, int(rss[1]) / 1024))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def growth_after(self, warmup_s: float) -> tuple[float, float]:
        """(first sample after ``warmup_s``, peak after it) in MB."""
        later = [rss for t, rss in self.samples if t >= warmup_s]
        return later[0], max(later)


def _daemon_config(tmp_path: Path, model: Path, soundscape: Path, port: int, name: str) -> Path:
    return write_config(tmp_path / f"{name}.toml", {
        "station": {"name": "load"},
        "audio": {"source": "file", "files": [str(soundscape)], "realtime": False, "loop": True},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.0},
        "mqtt": {"host": HOST, "port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "ha_discovery": False,
                 "status_interval_s": 1.0},
        "outbox": {"path": str(tmp_path / f"{name}.sqlite")},
    })


def _committed_and_waiting(outbox: Path) -> tuple[int, set[int]]:
    conn = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        committed = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()[0]
        waiting = {row[0] for row in conn.execute("SELECT seq FROM outbox")}
    finally:
        conn.close()
    return committed, waiting


def test_a_burst_keeps_memory_flat_and_every_detection_in_order(tmp_path, mosquitto, subscribe, trained_model,
                                                                synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").iterdir())[0]
    sub = subscribe(mosquitto, "birdd/load/detections")
    daemon = Daemon(_daemon_config(tmp_path, trained_model, soundscape, mosquitto.port, "burst"),
                    tmp_path / "burst.log")
    try:
        daemon.wait_for_log("birdd running", timeout=60)
        sampler = RssSampler(daemon.process.pid)
        started = time.monotonic()
        sub.wait_for(lambda ms: len(ms) >= BURST, timeout=600)
        elapsed = time.monotonic() - started
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        sampler.stop()
    finally:
        daemon.close()
    committed, waiting = _committed_and_waiting(tmp_path / "burst.sqlite")
    payloads = [m.json() for m in sub.wait_for(lambda ms: len({m.json()["detection_id"] for m in ms}) >=
                                               committed - len(waiting), timeout=30)]
    first_seen = list({p["detection_id"]: p for p in reversed(payloads)}.values())[::-1]
    ends = [p["end"] for p in first_seen]
    first, peak = sampler.growth_after(1.0)
    RESULTS.update(burst=len(first_seen), seconds=round(elapsed, 1), per_minute=round(len(first_seen) / elapsed * 60),
                   rss_first_mb=round(first, 1), rss_peak_mb=round(peak, 1), committed=committed,
                   left_in_outbox=len(waiting))
    print(f"\nburst: {RESULTS}")
    assert len(first_seen) == committed - len(waiting) and len(first_seen) >= BURST
    assert ends == sorted(ends), "detections arrived out of stream order"
    assert peak - first < RSS_GROWTH_LIMIT_MB, sampler.samples


def _fixed_header(buffer: bytes) -> tuple[int, int] | None:
    """(header size, remaining length) of the MQTT packet at the start of ``buffer``; None while incomplete."""
    length = 0
    for i in range(1, min(len(buffer), 5)):
        length |= (buffer[i] & 0x7F) << (7 * (i - 1))
        if not buffer[i] & 0x80:
            return i + 1, length
    return None


class StalledBroker:
    """A TCP peer on loopback that accepts MQTT connections, answers CONNECT and PINGREQ, and never acknowledges
    a PUBLISH. Counts the QoS 1 PUBLISH packets per topic it received."""

    def __init__(self) -> None:
        self._server = socket.create_server((HOST, 0))
        self.port = self._server.getsockname()[1]
        self.publishes: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        with conn:
            for kind, body in self._packets(conn):
                if kind == 1:  # CONNECT -> CONNACK (MQTT 5: flags, reason, no properties)
                    conn.sendall(b"\x20\x03\x00\x00\x00")
                elif kind == 12:  # PINGREQ -> PINGRESP
                    conn.sendall(b"\xd0\x00")
                elif kind == 3:  # PUBLISH: remember the topic, never acknowledge
                    topic = body[2:2 + int.from_bytes(body[:2], "big")].decode()
                    self.publishes[topic] = self.publishes.get(topic, 0) + 1

    def _packets(self, conn: socket.socket) -> Iterator[tuple[int, bytes]]:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while (header := _fixed_header(buffer)) is not None and len(buffer) >= sum(header):
                size, length = header
                yield buffer[0] >> 4, buffer[size:size + length]
                buffer = buffer[size + length:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def test_a_broker_that_never_acknowledges_does_not_grow_memory(tmp_path, trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").iterdir())[0]
    broker = StalledBroker()
    daemon = Daemon(_daemon_config(tmp_path, trained_model, soundscape, broker.port, "stall"), tmp_path / "stall.log")
    try:
        daemon.wait_for_log("MQTT connected", timeout=60)
        sampler = RssSampler(daemon.process.pid)
        time.sleep(STALL_S)
        sampler.stop()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        daemon.close()
        broker.close()
    committed, waiting = _committed_and_waiting(tmp_path / "stall.sqlite")
    first, peak = sampler.growth_after(2.0)
    sent = broker.publishes.get("birdd/load/detections", 0)
    RESULTS.update(stall_seconds=STALL_S, stall_committed=committed, stall_sent=sent,
                   stall_rss_first_mb=round(first, 1), stall_rss_peak_mb=round(peak, 1))
    print(f"\nstall: {committed} committed, {len(waiting)} waiting, {sent} sent, RSS {first:.1f} -> {peak:.1f} MB")
    assert sent <= MAX_INFLIGHT and len(waiting) == committed and committed > 1000
    assert peak - first < RSS_GROWTH_LIMIT_MB, sampler.samples
