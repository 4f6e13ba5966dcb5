"""When clips are written: each job waits until the ring holds its audio (the window and the margin after it).

Thread-free: the service's clip worker calls :meth:`ClipSchedule.work` in a loop and :meth:`ClipSchedule.drain`
at stop. Jobs come in window order, so the first job is always the first to be ready.

The schedule also holds the ring (:meth:`RingBuffer.hold`) at the first sample it may still need: that of the
oldest job not written yet, or else that of the last window the sink thread has seen (a job may follow for it).
A producer that waits for space (a file replayed as fast as it goes) then never overwrites a clip's audio,
however far the clip worker lags; a live source never waits, and a clip whose audio it overwrote is counted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

from daemon.audio.ring import RingBuffer
from daemon.clips.recorder import ClipJob, ClipRecorder

POLL_S = 0.05
"""how often a waiting job looks at the ring again (seconds): bounds the delay a clip adds to its margin"""
MAX_WAIT_S = 10.0
"""a job whose audio has not all arrived after this long (a stalled source) is written with what there is"""


class ClipSchedule:
    """Jobs from the sink thread (:meth:`submit`), written by the clip worker once their audio is in.

    A :class:`~daemon.sinks.base.BackgroundTask`: the service runs it on the ``birdd-clips`` thread.
    """

    name = "birdd-clips"

    def __init__(self, recorder: ClipRecorder, ring: RingBuffer) -> None:
        self.recorder = recorder
        self._ring = ring
        self._inbox: queue.SimpleQueue[tuple[ClipJob, float]] = queue.SimpleQueue()
        self._waiting: deque[tuple[ClipJob, float]] = deque()
        self._lock = threading.Lock()
        self._unwritten: deque[int] = deque()  # first samples of the jobs not written yet, in order
        self._seen = 0  # first sample a job of the latest window seen (or a later one) may need
        ring.hold(0)  # until the sink thread has seen a window, the stream's first window may still get a clip

    def advance(self, window_start: int) -> None:
        """The sink thread has reached the window starting at ``window_start``: older audio is needed only by
        jobs already submitted."""
        with self._lock:
            self._seen = max(self._seen, window_start - self.recorder.margin_samples)
            self._hold()

    def submit(self, job: ClipJob) -> None:
        """Queue a job (any thread; never blocks)."""
        with self._lock:
            self._unwritten.append(job.first_sample)
            self._hold()
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
            self._unwritten.clear()
            self._ring.hold(None)
        return left

    def _write(self, job: ClipJob) -> None:
        self.recorder.write(job)
        with self._lock:
            self._unwritten.popleft()
            self._hold()

    def _hold(self) -> None:
        # Called with the lock held.
        self._ring.hold(min(self._unwritten[0], self._seen) if self._unwritten else self._seen)

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
        mask = self.recorder.mask  # the filters decide about a voice a margin later than the ring holds the audio
        heard = self._ring.written >= job.last_sample or self._ring.closed
        return heard and (mask is None or mask.decided_until >= min(job.last_sample, self._ring.written))
