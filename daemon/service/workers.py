"""The daemon's two pipeline threads: audio -> tokens (tokenizer worker), tokens -> detections (classifier worker).

Both run the same stage objects as ``birdd replay`` (the backend's encoder and pooler, the linear
head), so the daemon scores a file exactly as replay does. Between them is a bounded queue of
messages: encoder output, the start of a new segment (a new file, or the stream after a gap), a
model switch (SIGHUP), and the end of the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from daemon.audio.files import SAMPLE_RATE
from daemon.audio.ring import RingBuffer
from daemon.audio.sources import AudioSource
from daemon.lifecycle import ManagedThread
from daemon.model.loader import Model
from daemon.model.windows import WindowGrid, WindowVector

log = logging.getLogger(__name__)

READ_SAMPLES = SAMPLE_RATE // 10
"""largest read from the ring (100 ms): keeps the per-read latency low"""
QUEUE_MESSAGES = 256
"""bound of the tokenizer -> classifier queue (about 4 minutes of audio in 1-s frame blocks)"""


@dataclass(frozen=True)
class Segment:
    """A run of contiguous stream samples from one input; windows are aligned to its start."""

    start_sample: int
    source: str


@dataclass(frozen=True)
class Units:
    """Encoder output for the classifier; ``read_at`` is when the samples behind it were read (monotonic)."""

    items: list
    read_at: float


@dataclass(frozen=True)
class SwitchModel:
    """From here on, use this model."""

    model: Model


END = object()
"""The end of the stream."""


@dataclass
class PipelineStats:
    """Counters each written by one thread, read by anyone (status message, metrics)."""

    samples: int = 0
    windows: int = 0
    detections: int = 0
    segments: int = 0
    gaps: int = 0
    encode_seconds: float = 0.0
    """tokenizer thread: time in the encoder"""
    score_seconds: float = 0.0
    """classifier thread: time pooling and scoring"""
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def real_time_factor(self) -> float:
        """Processing time per second of audio (0.01 = 1 % of one core)."""
        return (self.encode_seconds + self.score_seconds) / max(self.samples / SAMPLE_RATE, 1e-9)


class TokenizerWorker(ManagedThread):
    """Reads the ring incrementally and runs the backend's encoder (audio -> tokens) until the ring closes."""

    def __init__(self, ring: RingBuffer, source: AudioSource, model: Model, out: queue.Queue,
                 stats: PipelineStats) -> None:
        super().__init__("birdd-tokenizer", self._run)
        self._ring = ring
        self._source = source
        self._encoder = model.backend.encoder()
        self._out = out
        self._stats = stats
        self._pending_model: Model | None = None
        self._lock = threading.Lock()
        self._read_at = 0.0  # when the samples being encoded were read from the ring (monotonic)

    def switch_model(self, model: Model) -> None:
        """Use ``model`` from the next read on (the current segment is closed first)."""
        with self._lock:
            self._pending_model = model

    def _run(self) -> None:
        try:
            self._loop()
        finally:  # also after a failure: the classifier drains and ends
            self._out.put(END)

    def _loop(self) -> None:
        segment: Segment | None = None
        expected = 0
        while True:
            got = self._ring.read(READ_SAMPLES, timeout=0.5)
            if got is None:
                break
            start, samples = got
            self._read_at = self._stats.last_progress = time.monotonic()
            if samples.size == 0:
                continue
            with self._lock:
                model, self._pending_model = self._pending_model, None
            if model is not None:
                self._close_segment()
                self._encoder = model.backend.encoder()
                self._out.put(SwitchModel(model))
                segment = None
            if segment is not None and start != expected:
                log.warning("audio gap of %d samples at sample %d: windows realign after it", start - expected,
                            expected)
                self._stats.gaps += 1
                self._close_segment()
                segment = None
            offset = 0
            while offset < samples.size:
                here = start + offset
                source = self._source.source_at(here)
                if segment is None or source != segment.source:
                    if segment is not None:
                        self._close_segment()
                    segment = Segment(here, source)
                    self._stats.segments += 1
                    self._out.put(segment)
                # a segment change inside this read: split at the first sample of the next input
                stop = offset + self._run_length(here, samples.size - offset, segment.source)
                self._encode(samples[offset:stop])
                offset = stop
            expected = start + samples.size
        self._close_segment()

    def _run_length(self, first: int, n: int, source: str) -> int:
        if self._source.source_at(first + n - 1) == source:
            return n
        low, high = 1, n - 1  # first sample index (relative) whose source differs
        while low < high:
            mid = (low + high) // 2
            if self._source.source_at(first + mid) == source:
                low = mid + 1
            else:
                high = mid
        return low

    def _encode(self, samples: np.ndarray) -> None:
        started = time.perf_counter()
        items = self._encoder.push(samples)
        self._stats.encode_seconds += time.perf_counter() - started
        self._stats.samples += samples.size
        if items:
            self._out.put(Units(items, self._read_at))

    def _close_segment(self) -> None:
        items = self._encoder.flush()
        if items:
            self._out.put(Units(items, self._read_at))


WindowHandler = Callable[[Segment, WindowVector, np.ndarray, float], None]
"""Called for every scored window: (segment, window, probabilities, read_at)."""


class ClassifierWorker(ManagedThread):
    """Pools encoder output into windows, scores them with the head, hands them to ``on_window``."""

    def __init__(self, model: Model, grid: WindowGrid, inbox: queue.Queue, on_window: WindowHandler,
                 stats: PipelineStats, on_model: Callable[[Model], None]) -> None:
        super().__init__("birdd-classifier", self._run)
        self._model = model
        self._grid = grid
        self._pooler = model.backend.pooler(grid)
        self._inbox = inbox
        self._on_window = on_window
        self._on_model = on_model
        self._stats = stats
        self._segment: Segment | None = None

    def _run(self) -> None:
        while (message := self._inbox.get()) is not END:
            self._handle(message)
        self._flush(time.monotonic())

    def _handle(self, message: object) -> None:
        if isinstance(message, Units):
            started = time.perf_counter()
            windows = [w for item in message.items for w in self._pooler.push(item)]
            self._score(windows, message.read_at, started)
        elif isinstance(message, Segment):
            self._flush(time.monotonic())
            self._segment = message
        elif isinstance(message, SwitchModel):
            self._flush(time.monotonic())
            self._model = message.model
            self._pooler = message.model.backend.pooler(self._grid)
            self._on_model(message.model)

    def _flush(self, read_at: float) -> None:
        started = time.perf_counter()
        self._score(self._pooler.flush(), read_at, started)

    def _score(self, windows: list[WindowVector], read_at: float, started: float) -> None:
        """Score pooled windows; ``started`` is when pooling began (for the processing-time counter)."""
        if not windows:
            self._stats.score_seconds += time.perf_counter() - started
            return
        probabilities = self._model.head.probabilities(np.stack([w.vector for w in windows]))
        self._stats.score_seconds += time.perf_counter() - started
        for window, scores in zip(windows, probabilities, strict=True):
            self._stats.windows += 1
            self._on_window(self._segment, window, scores, read_at)
