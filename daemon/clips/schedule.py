"""When clips are written: each job waits until the ring holds its audio (the window and the margin after it).

Thread-free: the service's clip worker calls :meth:`ClipSchedule.work` in a loop and :meth:`ClipSchedule.drain`
at stop. Jobs come in window order, so the first job is always the first to be ready.

The schedule also holds each source's ring (:meth:`RingBuffer.hold`) at the first sample it may still need: that
of the source's oldest job not written yet, or else that of the last window of the source the sink thread has seen
(a job may follow for it). A producer that waits for space (a file replayed as fast as it goes) then never
overwrites a clip's audio, however far the clip worker lags; a live source never waits, and a clip whose audio
it overwrote is counted. With several sources, jobs are written in the order they came: one waiting for its
margin delays the next source's by at most that margin (or :data:`MAX_WAIT_S` for a stalled source).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

from daemon.audio.ring import RingBuffer
from daemon.clips.recorder import ClipJob, ClipRecorder, RingsByName, rings_by_name

POLL_S = 0.05
"""how often a waiting job looks at the ring again (seconds): bounds the delay a clip adds to its margin"""
MAX_WAIT_S = 10.0
"""a job whose audio has not all arrived after this long (a stalled source) is written with what there is"""


class ClipSchedule:
    """Jobs from the sink thread (:meth:`submit`), written by the clip worker once their audio is in.

    A :class:`~daemon.sinks.base.BackgroundTask`: the service runs it on the ``birdd-clips`` thread.
    """

    name = "birdd-clips"

    def __init__(self, recorder: ClipRecorder, rings: RingBuffer | RingsByName) -> None:
        self.recorder = recorder
        self._rings = rings_by_name(rings)
        self._inbox: queue.SimpleQueue[tuple[ClipJob, float]] = queue.SimpleQueue()
        self._waiting: deque[tuple[ClipJob, float]] = deque()
        self._lock = threading.Lock()
        self._unwritten: dict[str, deque[int]] = {name: deque() for name in self._rings}
        """per source, the first samples of its jobs not written yet, in order"""
        self._seen = dict.fromkeys(self._rings, 0)
        """per source, the first sample a job of its latest window seen (or a later one) may need"""
        for ring in self._rings.values():
            ring.hold(0)  # until the sink thread has seen a window, the stream's first window may still get a clip

    def advance(self, window_start: int, source_name: str = "") -> None:
        """The sink thread has reached the window of ``source_name`` starting at ``window_start``: older audio of
        that source is needed only by jobs already submitted."""
        with self._lock:
            self._seen[source_name] = max(self._seen[source_name], window_start - self.recorder.margin_samples)
            self._hold(source_name)

    def submit(self, job: ClipJob) -> None:
        """Queue a job (any thread; never blocks)."""
        with self._lock:
            self._unwritten[job.source_name].append(job.first_sample)
            self._hold(job.source_name)
        self._inbox.put((job, time.monotonic()))

    def pending(self) -> int:
        """Jobs not written yet."""
        return self._inbox.qsize() + len(self._waiting)

    def work(self, timeout: float) -> None:
        """Write the clips whose audio is in; wait up to ``timeout`` seconds for work."""
        deadline = time.monotonic() + timeout
        while True:
            self._take(block_until=None if self._waiting else deadline)
            while self._waiting and self._ready(*self._waiting[0]):
                self._write(self._waiting.popleft()[0])
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._waiting:
                time.sleep(min(POLL_S, left))

    def drain(self, deadline: float) -> int:
        """At stop: write the queued clips with the audio the ring holds now, until ``deadline`` (monotonic).

        Returns how many were left unwritten (their rows lose the clip name, counted as ``not_written_at_stop``).
        """
        self._take(block_until=None)
        while self._waiting and time.monotonic() < deadline:
            self._write(self._waiting.popleft()[0])
        left = len(self._waiting)
        self.recorder.give_up([job for job, _ in self._waiting])
        self._waiting.clear()
        with self._lock:
            for name, ring in self._rings.items():
                self._unwritten[name].clear()
                ring.hold(None)
        return left

    def _write(self, job: ClipJob) -> None:
        self.recorder.write(job)
        with self._lock:
            self._unwritten[job.source_name].popleft()
            self._hold(job.source_name)

    def _hold(self, name: str) -> None:
        # Called with the lock held.
        unwritten, seen = self._unwritten[name], self._seen[name]
        self._rings[name].hold(min(unwritten[0], seen) if unwritten else seen)

    def _take(self, block_until: float | None) -> None:
        try:
            if block_until is not None:
                self._waiting.append(self._inbox.get(timeout=max(0.0, block_until - time.monotonic())))
            while True:
                self._waiting.append(self._inbox.get_nowait())
        except queue.Empty:
            return

    def _ready(self, job: ClipJob, submitted: float) -> bool:
        if time.monotonic() - submitted > MAX_WAIT_S:
            return True
        ring = self._rings[job.source_name]
        mask = self.recorder.masks.get(job.source_name)  # the filters decide about a voice a margin after the ring
        heard = ring.written >= job.last_sample or ring.closed
        return heard and (mask is None or mask.decided_until >= min(job.last_sample, ring.written))
