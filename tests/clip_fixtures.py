"""A detection store, a ring full of synthetic audio and a clip recorder over them, for the clip tests."""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from pathlib import Path

import numpy as np
from conftest import detection_payload

from daemon.audio.ring import RingBuffer
from daemon.clips.recorder import ClipRecorder
from daemon.config import ClipsConfig, StoreConfig
from daemon.constants import SAMPLE_RATE
from daemon.pipeline.detection import Detection
from daemon.store.writer import DetectionStore, epoch_of, local_date_time

WINDOW = 5 * SAMPLE_RATE
DiskUsage = namedtuple("DiskUsage", "total used free")
PLENTY = DiskUsage(10**12, 0, 10**12)


class Station:
    """What the daemon owns around clips: the store, a ring of ``seconds`` of chirps, the recorder.

    Detection ``i`` is the window ``[5 i, 5 i + 5)`` s of the stream; ``now`` is the clock of both.
    """

    def __init__(self, tmp: Path, rng: np.random.Generator, seconds: int = 120, max_rows: int = 500_000,
                 **clips: object) -> None:
        self.now = detection_epoch(0)
        self.free = PLENTY
        self.store = DetectionStore(StoreConfig(path=str(tmp / "store.sqlite"), max_rows=max_rows),
                                    clock=lambda: self.now)
        self.ring = RingBuffer(seconds * SAMPLE_RATE)
        t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
        audio = 0.01 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (2000 + 300 * (t % 1)) * t)
        self.ring.write(audio.astype(np.float32))
        self.config = ClipsConfig(dir=str(tmp / "clips"), **clips)
        self.events: list[tuple[str, str]] = []
        """what the recorder published on the status topic: ``(kind, message)``"""
        self.recorder = ClipRecorder(self.config, self.store, self.ring, clock=lambda: self.now,
                                     on_event=lambda kind, message: self.events.append((kind, message)),
                                     disk_usage=lambda path: self.free)

    def detect(self, index: int, species: str = "grtit1", confidence: float = 0.5) -> tuple[int, bool]:
        """Store detection ``index`` and write its clip the way the daemon does; (row id, clip written)."""
        detection = dataclasses.replace(Detection(**detection_payload(index)), species_code=species,
                                        confidence=confidence)
        local_date, local_time = local_date_time(epoch_of(detection.end))
        files = self.recorder.plan(detection, local_date, local_time)
        row_id, released = self.store.add(detection, files)
        self.recorder.released(released)
        if files is None:
            return row_id, False
        job = self.recorder.job(row_id, files, detection, local_date, index * WINDOW, (index + 1) * WINDOW)
        return row_id, self.recorder.write(job)

    def files_on_disk(self) -> dict[str, int]:
        root = Path(self.config.dir)
        return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def detection_epoch(index: int) -> float:
    return epoch_of(detection_payload(index)["end"])
