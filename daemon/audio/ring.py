"""The bounded sample ring between an audio source (producer) and the tokenizer (consumer).

Every sample has an absolute index in the stream: the producer's :meth:`RingBuffer.write` and
:meth:`RingBuffer.skip` advance :attr:`RingBuffer.written`, and :meth:`RingBuffer.read` returns the
index of the first sample it hands out. Nothing is lost silently: when the producer laps the
consumer the oldest samples are overwritten and counted (``overruns``, ``lost_samples``), and the
consumer sees the next returned index jump forward; a stretch the producer marks as not heard
(:meth:`RingBuffer.skip`, e.g. while a device was away) shows up the same way.

Internally samples live at *physical* positions ``0, 1, 2, ...`` (modulo the capacity); a stream
index is a physical position plus an offset that grows at every skip. Skips are kept as markers
``(physical position, new offset)`` so that a gap costs no buffer space.

Samples already read stay in the ring until the producer overwrites them: :meth:`RingBuffer.copy_past`
hands out what is still held of any stream range (the audio clips of detections, with a margin
before and after the window). A producer that waits for space (:meth:`RingBuffer.wait_for_space`,
fast file replay) also leaves alone the samples from :meth:`RingBuffer.hold` on, so the past a clip
needs is there at any replay speed; a live producer never waits, and the past it keeps is whatever
the consumer's lag leaves of the capacity.

``write`` runs in the PortAudio callback: it allocates no arrays, never waits for data or space, and
holds the lock only for one slice copy (at most two) and a few integer updates. The consumer holds the
same lock for its own copy-out, at most ``max_samples`` floats (microseconds); the producer can wait
that long, far less than the GIL switch interval (5 ms) a Python callback waits anyway.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class RingBuffer:
    """Single-producer single-consumer float32 ring of ``capacity_samples`` samples, preallocated."""

    def __init__(self, capacity_samples: int) -> None:
        if isinstance(capacity_samples, bool) or not isinstance(capacity_samples, int) or capacity_samples < 1:
            raise ValueError(f"ring buffer: capacity_samples must be a positive int, got {capacity_samples!r}")
        self._hold: int | None = None  # stream index: waiting producers keep the samples from here on
        self._buf = np.zeros(capacity_samples, dtype=np.float32)
        self._cap = capacity_samples
        self._lock = threading.Lock()
        self._has_data = threading.Condition(self._lock)
        self._has_space = threading.Condition(self._lock)
        self._wp = 0  # physical samples written
        self._rp = 0  # physical samples consumed (or overwritten before they were read)
        self._write_offset = 0  # stream index - physical position, producer side
        self._read_offset = 0  # the same, consumer side (lags behind while skip markers are pending)
        self._skips: deque[tuple[int, int]] = deque()  # (physical position, offset from there on)
        self._offsets: deque[tuple[int, int]] = deque([(0, 0)])  # the same for every skip still held (past too)
        self._closed = False
        self.overruns = 0
        """times the producer overwrote samples the consumer had not read"""
        self.lost_samples = 0
        """samples overwritten before they were read"""
        self.skipped_samples = 0
        """samples marked as not heard by :meth:`skip`"""

    @property
    def capacity(self) -> int:
        """Size of the ring (samples)."""
        return self._cap

    @property
    def written(self) -> int:
        """Stream index one past the last sample written or skipped (the producer's sample counter)."""
        return self._wp + self._write_offset

    @property
    def closed(self) -> bool:
        """True once the producer has called :meth:`close`."""
        return self._closed

    def write(self, block: np.ndarray) -> None:
        """Append a 1-D float32 block; overwrite (and count) the oldest unread samples if the ring is full.

        Never blocks on the consumer's progress and allocates no arrays, so it is safe in an audio callback.
        """
        n = block.shape[0]
        if n == 0:
            return
        with self._lock:
            end = self._wp + n
            oldest_kept = end - self._cap
            if oldest_kept > self._rp:
                self.overruns += 1
                self.lost_samples += oldest_kept - self._rp
                self._rp = oldest_kept
                self._apply_skips()
            kept = min(n, self._cap)
            start = (end - kept) % self._cap
            first = min(kept, self._cap - start)
            self._buf[start:start + first] = block[n - kept:n - kept + first]
            if first < kept:
                self._buf[:kept - first] = block[n - kept + first:]
            self._wp = end
            while len(self._offsets) > 1 and self._offsets[1][0] <= end - self._cap:
                self._offsets.popleft()  # the run before this marker is entirely overwritten
            self._has_data.notify()

    def skip(self, n_samples: int) -> None:
        """Advance the stream by ``n_samples`` that were not heard; the consumer sees its next index jump."""
        if n_samples < 0:
            raise ValueError(f"ring buffer: cannot skip {n_samples} samples")
        if n_samples == 0:
            return
        with self._lock:
            self._write_offset += n_samples
            self._skips.append((self._wp, self._write_offset))
            self._offsets.append((self._wp, self._write_offset))
            self.skipped_samples += n_samples
            self._has_data.notify()

    def read(self, max_samples: int, timeout: float | None = None) -> tuple[int, np.ndarray] | None:
        """Take up to ``max_samples`` contiguous samples: ``(stream index of the first, float32 array)``.

        Waits up to ``timeout`` seconds (None: for ever) for data; on timeout the array is empty and
        the index is where the next samples will start. Returns None at the end of the stream: once
        the ring is closed and everything before the close has been read. A returned index larger
        than the previous index plus its length marks a gap (overrun or skip).
        """
        if max_samples < 1:
            raise ValueError(f"ring buffer: max_samples must be >= 1, got {max_samples}")
        with self._lock:
            if not self._has_data.wait_for(lambda: self._wp > self._rp or self._closed, timeout):
                self._apply_skips()
                return self._rp + self._read_offset, np.zeros(0, dtype=np.float32)
            self._apply_skips()
            if self._wp == self._rp:
                return None
            end = min(self._wp, self._rp + max_samples, self._skips[0][0] if self._skips else self._wp)
            out = self._copy(self._rp, end)
            index = self._rp + self._read_offset
            self._rp = end
            self._has_space.notify()
            return index, out

    def copy_past(self, start: int, stop: int) -> list[tuple[int, np.ndarray]]:
        """What the ring still holds of stream samples ``[start, stop)``: runs ``(stream index, float32 copy)``.

        Read or not, a sample is held until the producer overwrites it; samples skipped, overwritten or
        not written yet are missing, so the runs may have gaps or be empty. Never changes the read position.
        """
        runs = []
        with self._lock:
            oldest = max(0, self._wp - self._cap)
            bounds = [*(position for position, _ in list(self._offsets)[1:]), self._wp]
            for (first, offset), last in zip(self._offsets, bounds, strict=True):
                low, high = max(first, oldest, start - offset), min(last, stop - offset)
                if low < high:
                    runs.append((low + offset, self._copy(low, high)))
        return runs

    def hold(self, index: int | None) -> None:
        """Keep stream samples from ``index`` on from producers that wait for space (None: only unread ones).

        The reader of the past (the clip worker) moves it forward as it goes; a live producer ignores it.
        """
        with self._lock:
            self._hold = index
            self._has_space.notify_all()

    def wait_for_space(self, n_samples: int, timeout: float | None = None) -> bool:
        """Wait until ``n_samples`` can be written without overwriting unread or held samples (or the ring is closed).

        For producers that prefer back-pressure to loss (fast file replay). Returns False on timeout.
        """
        if not 1 <= n_samples <= self._cap:
            raise ValueError(f"ring buffer: cannot wait for {n_samples} samples of space (capacity {self._cap})")
        with self._lock:
            return self._has_space.wait_for(lambda: self._free() >= n_samples or self._closed, timeout)

    def close(self) -> None:
        """Mark the end of the stream: the consumer reads what is left, then gets None."""
        with self._lock:
            self._closed = True
            self._has_data.notify_all()
            self._has_space.notify_all()

    def _free(self) -> int:
        # Called with the lock held: samples a waiting producer may write. A held sample's physical position is
        # taken with the reader's offset, which is never smaller than its own: that errs towards keeping more.
        keep_from = self._rp
        if self._hold is not None:
            keep_from = max(self._wp - self._cap, min(keep_from, self._hold - self._read_offset))
        return self._cap - (self._wp - keep_from)

    def _copy(self, first: int, stop: int) -> np.ndarray:
        # Called with the lock held: a copy of physical positions [first, stop), still in the buffer.
        n = stop - first
        out = np.empty(n, dtype=np.float32)
        start = first % self._cap
        head = min(n, self._cap - start)
        out[:head] = self._buf[start:start + head]
        out[head:] = self._buf[:n - head]
        return out

    def _apply_skips(self) -> None:
        # Called with the lock held: take on the offset of every skip the read position has reached.
        while self._skips and self._skips[0][0] <= self._rp:
            self._read_offset = self._skips.popleft()[1]
