"""Replay audio files into the ring, paced at real time like a microphone or as fast as the consumer reads."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from daemon.audio.files import find_audio_files, read_audio
from daemon.audio.ring import RingBuffer
from daemon.audio.sources import SourceStatus
from daemon.config import AudioConfig
from daemon.constants import BLOCK_SAMPLES, POLL_S, SAMPLE_RATE
from daemon.errors import AudioError
from daemon.lifecycle import ManagedThread

log = logging.getLogger(__name__)

_SEGMENTS_KEPT = 1024
"""file boundaries remembered for :meth:`FileSource.source_at` (far more than a ring can hold)"""


class FileSource(ManagedThread):
    """Plays ``config.files`` (files, or folders searched recursively, sorted) one after the other.

    The files form one stream: their samples follow each other in the ring without gaps. With
    ``realtime`` each block is written once the wall-clock time it would have taken a microphone
    to record it has passed (monotonic clock, absolute deadlines: no drift, so sample ``n`` is due
    ``n / 32000`` s after the start, like a microphone's; the few blocks held up while the next file is
    decoded follow in a short burst); a slow consumer then overruns the ring as it would with a mic.
    Otherwise blocks are written as soon as the ring has room (back-pressure, nothing dropped).
    Unreadable files are logged and skipped; the ring is closed at the end of the input unless
    ``loop`` is set. The files are found when the source is made: none at all raises AudioError.
    """

    def __init__(self, config: AudioConfig, ring: RingBuffer, *, origin: float | None = None) -> None:
        """``origin``: monotonic time of stream sample 0 (None: when the thread starts), for real-time pacing."""
        super().__init__("birdd-file-source", self._run)
        self._config = config
        self._origin = origin
        self._ring = ring
        self._stop = self.stop_event
        self._lock = threading.Lock()
        self._segments: deque[tuple[int, str]] = deque(maxlen=_SEGMENTS_KEPT)
        self._state = "starting"
        self._detail = ""
        self._skipped = 0
        self._files = self._find_files()
        if not self._files:  # found before the service opens anything or connects
            raise AudioError(f"audio.files: no audio files found in {', '.join(self._config.files)}")

    def stop(self, timeout: float = 5.0) -> None:
        """End the replay, wait up to ``timeout`` seconds for the thread, and close the ring."""
        super().stop(timeout)
        self._ring.close()

    def status(self) -> SourceStatus:
        """State, current file and skipped-file count."""
        with self._lock:
            return SourceStatus(state=self._state, detail=self._detail, skipped_files=self._skipped)

    def source_at(self, sample: int) -> str:
        """The file that stream sample ``sample`` came from."""
        with self._lock:
            for start, name in reversed(self._segments):
                if sample >= start:
                    return name
            return self._segments[0][1] if self._segments else ""

    def _find_files(self) -> list[Path]:
        files: list[Path] = []
        for entry in self._config.files:
            try:
                files.extend(find_audio_files([entry]))
            except AudioError as exc:
                log.warning("skipping input: %s", exc)
                self._skipped += 1
        return files

    def _run(self) -> None:
        origin = time.monotonic() if self._origin is None else self._origin
        with self._lock:
            self._state = "ok"
        while not self._stop.is_set():
            played = 0
            for path in self._files:
                if self._stop.is_set():
                    break
                try:
                    audio = read_audio(path)
                except AudioError as exc:
                    log.warning("skipping file: %s", exc)
                    with self._lock:
                        self._skipped += 1
                    continue
                with self._lock:
                    self._segments.append((self._ring.written, str(path)))
                    self._detail = str(path)
                played += self._play(audio, origin)
            if not self._config.loop or played == 0:
                break
        with self._lock:
            self._state = "stopped" if self._stop.is_set() else "finished"
        log.info("file source %s after %d samples", self._state, self._ring.written)
        self._ring.close()

    def _play(self, audio: np.ndarray, origin: float) -> int:
        """Write one file's samples block by block; returns how many were written."""
        for begin in range(0, audio.size, BLOCK_SAMPLES):
            block = audio[begin:begin + BLOCK_SAMPLES]
            if not self._wait_until_due(block.size, origin):
                return begin
            self._ring.write(block)
        return audio.size

    def _wait_until_due(self, n: int, origin: float) -> bool:
        """Wait until a block of ``n`` samples may be written; False if stopped meanwhile."""
        if self._config.realtime:
            due = origin + (self._ring.written + n) / SAMPLE_RATE
            return not self._stop.wait(max(0.0, due - time.monotonic()))
        while not self._ring.wait_for_space(n, timeout=POLL_S):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()
