"""Live capture from a sound card through PortAudio (sounddevice), kept alive across device loss.

Two threads, and only one of them is PortAudio's: the stream callback downmixes each block into a
preallocated scratch array and copies it into a *capture ring* at the device's rate (no allocation,
no resampling, no logging). The source's own thread converts the capture ring to the model rate
with a streaming soxr resampler and writes the model ring; it also opens the device, notices its
loss, and re-opens it with exponential back-off and jitter while the daemon stays up.

The model ring's sample counter is the stream clock. Sample 0 is the moment :meth:`MicSource.start`
was called; time without a device (missing at start, or lost later) is marked in the ring as a gap
(:meth:`RingBuffer.skip`) of the wall-clock time it lasted, so later samples keep their place in
time and nothing is invented.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time

import numpy as np
import sounddevice as sd
import soxr

from daemon.audio.ring import RingBuffer
from daemon.audio.sources import SourceStatus
from daemon.backoff import Backoff
from daemon.config import AudioConfig
from daemon.constants import POLL_S, SAMPLE_RATE
from daemon.errors import AudioError
from daemon.lifecycle import ManagedThread

log = logging.getLogger(__name__)

CAPTURE_RING_S = 2.0
"""capacity of the capture ring (seconds at the device rate): how long the converter thread may stall"""
DEVICE_STALL_S = 5.0
"""a stream that delivers nothing for this long is treated as lost (seconds)"""


class MicSource(ManagedThread):
    """Captures ``config.device`` at ``config.capture_rate`` into ``ring`` at the model rate.

    A device missing at start or lost later is not an error: it is waited for, with back-off.
    """

    def __init__(self, config: AudioConfig, ring: RingBuffer, rng: random.Random | None = None, *,
                 origin: float | None = None) -> None:
        """``origin``: monotonic time of stream sample 0 (None: when the thread starts); gaps are marked from it."""
        super().__init__("birdd-mic-source", self._run)
        self._config = config
        self._origin = origin
        self._ring = ring
        self._backoff = Backoff(config.retry_initial_s, config.retry_max_s, rng)
        self._stop = self.stop_event
        self._lock = threading.Lock()
        self._state = "starting"
        self._detail = ""
        self._retries = 0
        self._past_overruns = 0
        self._capture: _Capture | None = None
        self._label = f"mic:{config.device or 'default'}"

    def stop(self, timeout: float = 5.0) -> None:
        """Close the device, wait up to ``timeout`` seconds for the thread, and close the ring."""
        super().stop(timeout)
        self._ring.close()

    def status(self) -> SourceStatus:
        """ok / waiting (with the error) / stopped, re-open attempts and overruns so far."""
        with self._lock:
            live = self._capture.overruns if self._capture is not None else 0
            return SourceStatus(state=self._state, detail=self._detail, retries=self._retries,
                                overruns=self._past_overruns + live)

    def source_at(self, sample: int) -> str:
        """``mic:<configured device>``: stable across reboots, so detection ids are too."""
        return self._label

    def _run(self) -> None:
        origin = time.monotonic() if self._origin is None else self._origin
        while True:
            if self._capture_once(origin):
                self._backoff.reset()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            with self._lock:
                self._retries += 1
                detail = self._detail
            log.warning("%s; retrying in %.1f s", detail, delay)
            if self._stop.wait(delay):
                break
            _refresh_device_list()
        with self._lock:
            self._state = "stopped"
        self._ring.close()

    def _capture_once(self, origin: float) -> bool:
        """Open the device and pump it until stop or loss; False if it could not be opened."""
        try:
            capture = _Capture(self._config)
        except AudioError as exc:
            self._set_state("waiting", str(exc))
            return False
        self._skip_to_now(origin)
        try:
            capture.start()
        except AudioError as exc:
            capture.close()
            self._set_state("waiting", str(exc))
            return False
        log.info("capturing from %s at %d Hz, %d channel(s)", capture.name, capture.rate, capture.channels)
        with self._lock:
            self._capture = capture
            self._state, self._detail = "ok", capture.name
        reason = self._pump(capture)
        with self._lock:
            self._capture = None
            self._past_overruns += capture.overruns
        if reason is not None:
            self._set_state("waiting", f"audio device {capture.name!r}: {reason}")
        return True

    def _pump(self, capture: _Capture) -> str | None:
        """Convert the capture ring into the model ring until stop (None) or loss (the reason); closes the stream."""
        converter = _RateConverter(capture.rate, self._ring)
        reason = None
        while not self._stop.is_set() and (reason := capture.failure()) is None:
            start, block = capture.ring.read(capture.rate // 2, timeout=POLL_S)
            converter.push(start, block)
        capture.close()
        while (item := capture.ring.read(capture.ring.capacity, timeout=0)) and item[1].size:
            converter.push(*item)
        converter.flush()
        return reason

    def _skip_to_now(self, origin: float) -> None:
        """Mark the time spent without a device as a gap, so the stream clock keeps up with the wall clock."""
        missing = round((time.monotonic() - origin) * SAMPLE_RATE) - self._ring.written
        if missing >= SAMPLE_RATE * self._config.block_ms // 1000:
            log.info("marking %.2f s without audio", missing / SAMPLE_RATE)
            self._ring.skip(missing)

    def _set_state(self, state: str, detail: str) -> None:
        with self._lock:
            self._state, self._detail = state, detail


class _Capture:
    """One opened input stream whose callback copies mono blocks into a ring at the device rate."""

    def __init__(self, config: AudioConfig) -> None:
        info = _find_input_device(config.device)
        self.name = str(info["name"])
        self.rate = config.capture_rate or round(info["default_samplerate"])
        self.channels = min(2, int(info["max_input_channels"]))
        blocksize = max(1, self.rate * config.block_ms // 1000)
        self.ring = RingBuffer(max(round(self.rate * CAPTURE_RING_S), 4 * blocksize))
        self._mix = np.zeros(blocksize, dtype=np.float32)
        self._overflows = 0
        self._finished = threading.Event()
        self._last_progress = (0, time.monotonic())
        try:
            self._stream = sd.InputStream(
                device=int(info["index"]), samplerate=self.rate, channels=self.channels, dtype="float32",
                blocksize=blocksize, callback=self._callback, finished_callback=self._finished.set)
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioError(f"audio device {self.name!r}: cannot open at {self.rate} Hz ({exc})") from None

    @property
    def overruns(self) -> int:
        """Input overflows reported by PortAudio plus capture-ring overruns."""
        return self._overflows + self.ring.overruns

    def start(self) -> None:
        """Start the stream (the callback begins to fire)."""
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"audio device {self.name!r}: cannot start ({exc})") from None
        self._last_progress = (0, time.monotonic())

    def failure(self) -> str | None:
        """Why the stream stopped delivering audio, or None while it is healthy."""
        if self._finished.is_set() or not self._stream.active:
            return "stream stopped unexpectedly"
        written, since = self._last_progress
        now = time.monotonic()
        if self.ring.written != written:
            self._last_progress = (self.ring.written, now)
        elif now - since > DEVICE_STALL_S:
            return f"no audio for {now - since:.0f} s"
        return None

    def close(self) -> None:
        """Stop and close the stream; errors from a device that is already gone are only logged."""
        try:
            self._stream.abort()
            self._stream.close()
        except sd.PortAudioError as exc:
            log.info("closing audio device %r: %s", self.name, exc)

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status: sd.CallbackFlags) -> None:
        # PortAudio's thread: copy only (no allocation, no logging).
        if status.input_overflow:
            self._overflows += 1
        if self.channels == 1:
            self.ring.write(indata[:, 0])
        else:
            mix = self._mix[:frames]
            np.sum(indata, axis=1, out=mix)
            mix *= 1.0 / self.channels
            self.ring.write(mix)


class _RateConverter:
    """Capture-rate blocks with their capture-ring indices -> model-rate samples in the model ring.

    Capture index ``i`` maps to model index ``base + round(i * SAMPLE_RATE / rate)``; a gap in the
    capture ring flushes the resampler and becomes a gap of the mapped length in the model ring.
    """

    def __init__(self, rate: int, ring: RingBuffer) -> None:
        self._ratio = SAMPLE_RATE / rate
        self._resampler = (None if rate == SAMPLE_RATE
                           else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"))
        self._ring = ring
        self._base = ring.written
        self._next = 0

    def push(self, start: int, block: np.ndarray) -> None:
        """Convert one capture block starting at capture index ``start``."""
        if start != self._next:
            self.flush()
            self._ring.skip(max(0, self._base + round(start * self._ratio) - self._ring.written))
        self._next = start + block.size
        if block.size:
            self._ring.write(block if self._resampler is None else self._resampler.resample_chunk(block))

    def flush(self) -> None:
        """Write the resampler's pending tail and reset it for a new stretch of audio."""
        if self._resampler is not None:
            self._ring.write(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            self._resampler.clear()


def _find_input_device(substring: str) -> dict:
    """The first input device whose name contains ``substring`` (case-insensitive); "" = the default input."""
    try:
        if not substring:
            return dict(sd.query_devices(kind="input"))
        devices = [dict(d) for d in sd.query_devices() if d["max_input_channels"] > 0]
    except sd.PortAudioError as exc:
        raise AudioError(f"audio.device {substring!r}: no input device ({exc})") from None
    for device in devices:
        if substring.lower() in device["name"].lower():
            return device
    names = ", ".join(repr(d["name"]) for d in devices) or "none"
    raise AudioError(f"audio.device {substring!r}: no input device matches (inputs: {names})")


def _refresh_device_list() -> None:
    """Re-initialise PortAudio so that a device plugged in since start-up is listed (no stream is open here)."""
    with contextlib.suppress(sd.PortAudioError):  # already terminated if the last initialisation failed
        sd._terminate()
    try:
        sd._initialize()
    except sd.PortAudioError as exc:
        log.warning("re-initialising PortAudio: %s", exc)



def probe_input(config: AudioConfig, seconds: float) -> tuple[str, int]:
    """Open ``config.device`` as the daemon does, capture for ``seconds`` and close it: (device name, frames).

    Raises :class:`AudioError` when no device matches or it cannot be opened or started.
    """
    capture = _Capture(config)
    try:
        capture.start()
        time.sleep(seconds)
        return capture.name, capture.ring.written
    finally:
        capture.close()
