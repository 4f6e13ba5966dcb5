"""A detection store filled through the daemon's own writer, with real FLAC clips and PNG spectrograms,
and ``birdd web`` serving it (in this process, or as a real ``birdd web`` subprocess); a raw SSE reader."""

from __future__ import annotations

import functools
import io
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import HOST, free_port
from daemon_process import write_config

from daemon.clips.spectrogram import render_spectrogram
from daemon.config import Config, StoreConfig, config_from_dict
from daemon.constants import SAMPLE_RATE
from daemon.model.features import FrontEndParams
from daemon.pipeline.detection import Detection, iso_utc, make_detection_id
from daemon.store.writer import ClipFiles, DetectionStore
from daemon.web.server import WebServer

SPECIES = [("amerob", "American Robin", "Turdus migratorius"),
           ("norcar", "Northern Cardinal", "Cardinalis cardinalis"),
           ("blujay", "Blue Jay", "Cyanocitta cristata"),
           ("carwre", "Carolina Wren", "Thryothorus ludovicianus"),
           ("mouchi", "Mourning Dove", "Zenaida macroura")]
MODEL = {"name": "test", "backend": "stsg", "version": "abc123"}
CLIP_RATE = SAMPLE_RATE
CLIP_SECONDS = 7.0
"""a 5-s window and a 1-s margin each side, as the detector keeps"""
LIVE_MARGIN_S = 10.0
"""a filled store's newest detection ends this long before it was filled"""


@functools.cache
def species_clip(species: int) -> tuple[bytes, bytes]:
    """A made-up call of one species as FLAC bytes and its spectrogram PNG (the daemon's renderer), made once."""
    call = chirp(CLIP_SECONDS, 1500 + 500 * species, 4000 + 800 * species, np.random.default_rng(species))
    flac = io.BytesIO()
    sf.write(flac, call, CLIP_RATE, format="FLAC")
    return flac.getvalue(), render_spectrogram(call, FrontEndParams(), (1.0, CLIP_SECONDS - 1.0))


def chirp(seconds: float, low_hz: float, high_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A bird-like call: repeated down-sweeping notes over faint noise."""
    t = np.arange(int(seconds * CLIP_RATE)) / CLIP_RATE
    note = (t * 3) % 1.0
    freq = high_hz - (high_hz - low_hz) * note
    phase = 2 * np.pi * np.cumsum(freq) / CLIP_RATE
    envelope = np.where((note < 0.6) & (t > 1.0) & (t < seconds - 1.0), np.sin(np.pi * note / 0.6), 0.0)
    return (0.4 * envelope * np.sin(phase) + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@dataclass
class FilledStore:
    """A store on disk and what was put in it."""

    path: Path
    clips: Path
    writer: DetectionStore
    rng: np.random.Generator
    ids: list[int]

    def add(self, species: int, end_epoch: float, confidence: float, clip: bool = True,
            source: str = "mic:USB Audio") -> int:
        """Store one detection (with a FLAC clip and a PNG spectrogram on disk when ``clip``); its row id."""
        code, common, scientific = SPECIES[species]
        detection = Detection(make_detection_id("test", source, 0.0, int(end_epoch * 1000), code), "test", source,
                              iso_utc(end_epoch - 5), iso_utc(end_epoch), code, common, scientific, confidence, MODEL)
        files = None
        if clip:
            day = time.strftime("%Y-%m-%d", time.localtime(end_epoch))
            stem = f"{day}/{code}_{int(end_epoch * 1000)}"
            files = ClipFiles(f"{stem}.flac", f"{stem}.png")
            (self.clips / day).mkdir(parents=True, exist_ok=True)
            flac, png = species_clip(species)
            (self.clips / files.clip).write_bytes(flac)
            (self.clips / files.spectrogram).write_bytes(png)
        row_id, _ = self.writer.add(detection, files)
        self.ids.append(row_id)
        return row_id


def fill_store(root: Path, rng: np.random.Generator, count: int = 30) -> FilledStore:
    """A store with ``count`` detections over today so far and yesterday (every third without a clip).

    Today's detections end at distinct instants between midnight and ``LIVE_MARGIN_S`` ago, so detections a
    test adds "now" are the newest; in the first seconds after midnight it waits until today has room.
    """
    now = time.time()
    midnight = _local_midnight(now)
    if now - midnight < 2 * LIVE_MARGIN_S:
        time.sleep(midnight + 2 * LIVE_MARGIN_S - now)
        now = time.time()
    root.mkdir(parents=True, exist_ok=True)
    store = FilledStore(root / "detections.sqlite", root / "clips", DetectionStore(
        StoreConfig(path=str(root / "detections.sqlite"))), rng, [])
    store.clips.mkdir(exist_ok=True)
    today_so_far = now - LIVE_MARGIN_S - midnight
    for i in range(count):
        day_start = midnight if i % 7 else midnight - 86_400  # one in seven yesterday
        end = day_start + today_so_far * (i + 1) / (count + 1)
        store.add(i % len(SPECIES), end, round(float(rng.uniform(0.3, 0.99)), 3), clip=i % 3 != 2)
    return store


def _local_midnight(epoch: float) -> float:
    """The start of ``epoch``'s local day."""
    return time.mktime((*time.localtime(epoch)[:3], 0, 0, 0, 0, 0, -1))


def web_config(store: FilledStore, **web: object) -> Config:
    """A configuration serving ``store`` on a free loopback port."""
    return config_from_dict({"store": {"path": str(store.path)}, "clips": {"dir": str(store.clips)},
                             "web": {"bind": HOST, "port": free_port(), **web}})


class ServerThread:
    """``WebServer`` running in a thread of the test process."""

    def __init__(self, config: Config):
        self.server = WebServer(config)
        self.url = self.server.url
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(5)


class SseClient:
    """A raw SSE reader over a socket: the wire format exactly as a browser's EventSource sees it."""

    def __init__(self, url: str, last_event_id: int | None = None):
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall(f"GET /api/v2/detections/stream HTTP/1.1\r\nHost: x\r\n{resume}\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.headers = head.decode()

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def event(self) -> tuple[str, dict, str | None]:
        """The next event: name, data and id."""
        fields = dict(line.split(": ", 1) for line in self._until(b"\n\n").decode().splitlines())
        return fields["event"], json.loads(fields["data"]), fields.get("id")

    def close(self) -> None:
        self.sock.close()


class WebProcess:
    """A real ``birdd web -c CONFIG`` subprocess serving a store and its clips; its stderr goes to ``log``."""

    def __init__(self, tmp_path: Path, store: Path, clips: Path, preexec_fn=None, **web: object):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = tmp_path / "birdd-web.log"
        config = write_config(tmp_path / "web.toml", {
            "store": {"path": str(store)}, "clips": {"dir": str(clips)},
            "web": {"bind": HOST, "port": self.port, **web}})
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen([str(Path(sys.executable).with_name("birdd")), "web", "-c", str(config)],
                                            stdout=subprocess.DEVNULL, stderr=stderr,
                                            preexec_fn=preexec_fn)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/ping", timeout=2) as response:
                    if json.load(response) == {"status": "ok"}:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"birdd web did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, and its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode
