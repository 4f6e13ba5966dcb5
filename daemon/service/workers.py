"""The daemon's two data threads; they only move data: ring -> pipeline -> queue -> sinks.

- :class:`PipelineWorker` reads the ring in 100-ms blocks, labels each with the input it came from,
  pushes it through the :class:`~daemon.pipeline.scoring.ScoringPipeline` (the same object ``birdd
  replay`` runs) and queues the window results, then hands the block to the audio sinks (the archive).
  A model reload swaps the pipeline between two reads.
- :class:`SinkWorker` hands every window result to the window sinks and every detection to the
  detection sinks, in order; a sink that fails is logged and counted, the others still get the item.
  With several sources, every source's pipeline worker feeds the one queue; the sink worker ends once
  each has queued its end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import numpy as np

from daemon.audio.ring import RingBuffer
from daemon.constants import BLOCK_SAMPLES, POLL_S
from daemon.lifecycle import ManagedThread
from daemon.model.loader import Model
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline, WindowResult
from daemon.sinks.base import AudioSink, GroupCommitSink, Sink, WindowSink

log = logging.getLogger(__name__)


class InputNames(Protocol):
    """What the pipeline worker asks of its source: which input produced a stream sample."""

    def source_at(self, sample: int) -> str:
        """The name of the input that produced stream sample ``sample``."""

QUEUE_ITEMS = 256
"""bound of the pipeline -> sinks queue (window results: over 20 minutes of audio at a 5-s hop)"""
END = object()
"""Queued after the last window result."""


def blocks_by_source(start: int, samples: np.ndarray, source_at: Callable[[int], str],
                     read_at: float) -> list[AudioBlock]:
    """Split one ring read where the input changes (file replay plays its files back to back)."""
    blocks = []
    offset = 0
    while offset < samples.size:
        source = source_at(start + offset)
        stop = offset + _run_length(start + offset, samples.size - offset, source, source_at)
        blocks.append(AudioBlock(start + offset, samples[offset:stop], source, read_at))
        offset = stop
    return blocks


def _run_length(first: int, n: int, source: str, source_at: Callable[[int], str]) -> int:
    """How many samples from ``first`` on come from ``source`` (binary search for the first that does not)."""
    if source_at(first + n - 1) == source:
        return n
    low, high = 1, n - 1
    while low < high:
        mid = (low + high) // 2
        if source_at(first + mid) == source:
            low = mid + 1
        else:
            high = mid
    return low


class PipelineWorker(ManagedThread):
    """Ring -> :class:`ScoringPipeline` -> queue of :class:`WindowResult` s, until the ring closes."""

    def __init__(self, ring: RingBuffer, source: InputNames, model: Model,
                 make_pipeline: Callable[[Model], ScoringPipeline], out: queue.Queue, *,
                 name: str = "birdd-pipeline") -> None:
        super().__init__(name, self._run)
        self._ring = ring
        self._source = source
        self._make_pipeline = make_pipeline
        self.pipeline = make_pipeline(model)
        self._out = out
        self._pending: Model | None = None
        self.audio_sinks: list[AudioSink] = []
        """given every block after the pipeline (set before :meth:`start`)"""
        self._lock = threading.Lock()
        self.last_read = time.monotonic()
        """monotonic time of the last ring read (the service's stall check)"""

    @property
    def model(self) -> Model:
        """The model in use."""
        return self.pipeline.model

    def switch_model(self, model: Model) -> None:
        """Use ``model`` from the next read on (the current segment is scored with the old one first)."""
        with self._lock:
            self._pending = model

    def _run(self) -> None:
        try:
            while (got := self._ring.read(BLOCK_SAMPLES, timeout=5 * POLL_S)) is not None:
                self.last_read = time.monotonic()
                self._swap_if_asked()
                start, samples = got
                for block in blocks_by_source(start, samples, self._source.source_at, self.last_read):
                    self._emit(self.pipeline.push(block))
                    for audio_sink in self.audio_sinks:
                        audio_sink.put_audio(block)
            self._emit(self.pipeline.flush())
            for audio_sink in self.audio_sinks:
                audio_sink.end_audio()
        finally:  # also after a failure: the sink worker drains and ends
            self._out.put(END)

    def _swap_if_asked(self) -> None:
        with self._lock:
            model, self._pending = self._pending, None
        if model is not None:
            self._emit(self.pipeline.flush())
            self.pipeline = self._make_pipeline(model)

    def _emit(self, results: list[WindowResult]) -> None:
        for result in results:
            self._out.put(result)


GROUP_COMMIT_MAX = 64
"""most window results the sink thread takes from its queue at once (their detections share one outbox commit)"""


class SinkWorker(ManagedThread):
    """Queue of window results -> window sinks and detection sinks, until the pipeline worker ends.

    The window results already queued when the thread looks are served together: every sink gets each window
    and detection in order as before, and a :class:`GroupCommitSink` (the outbox) commits their detections once,
    so that 8 sources whose windows end together pay one fsync, not eight."""

    def __init__(self, inbox: queue.Queue, sinks: list[Sink], window_sinks: list[WindowSink],
                 failures: Counter[str], producers: int = 1) -> None:
        """``producers``: how many pipeline workers feed ``inbox`` (each queues :data:`END` once)."""
        super().__init__("birdd-sinks", self._run)
        self._inbox = inbox
        self._producers = producers
        self._takes = [(sink, sink.hold if isinstance(sink, GroupCommitSink) else sink.put) for sink in sinks]
        """each detection sink with the method that takes a detection: ``hold`` for a group-commit sink"""
        self._committing = [sink for sink in sinks if isinstance(sink, GroupCommitSink)]
        self._window_sinks = window_sinks
        self.failures = failures
        """sink class name -> calls that raised (shared with the status report)"""

    def _run(self) -> None:
        ended = 0
        while ended < self._producers:
            batch = [self._inbox.get()]
            while len(batch) < GROUP_COMMIT_MAX and not self._inbox.empty():  # only this thread takes from it
                batch.append(self._inbox.get())
            held = False
            for item in batch:
                if item is END:
                    ended += 1
                    continue
                for window_sink in self._window_sinks:
                    self._call(window_sink, window_sink.put_window, item)
                for detection in item.detections:
                    held = True
                    for sink, take in self._takes:
                        self._call(sink, take, detection)
            for sink in self._committing if held else ():
                self._call(sink, sink.commit)

    def _call(self, sink: object, method: Callable[..., object], *args: object) -> None:
        try:
            method(*args)
        except Exception:
            name = type(sink).__name__
            self.failures[name] += 1
            log.exception("%s failed (%d failure(s) so far); the other sinks still get the item", name,
                          self.failures[name])
