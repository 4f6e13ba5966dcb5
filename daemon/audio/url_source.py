"""A stream or file by URL (``audio.url``), decoded by an ``ffmpeg`` child, kept alive across outages.

The source's thread starts :class:`~daemon.audio.ffmpeg_child.FfmpegChild` and copies what it decodes into
the ring. Like the microphone, the ring's sample counter follows the wall clock from :meth:`UrlSource.start`
on: time without audio (a refused connection, an outage, a stall) becomes a gap (:meth:`RingBuffer.skip`)
when audio comes back, so later samples keep their place in time and nothing is invented. Three faults are
watched for, each logged as one line, counted, reported as a status event and retried with the shared
back-off (:class:`~daemon.backoff.Backoff`):

- the child exits (a wrong URL, a refused password, the server going away): ``stream_error``;
- no audio for ``audio.stall_s`` seconds (a server that accepts and sends nothing, a camera that hangs):
  the child is killed, ``stream_stalled``;
- the stream delivers faster or slower than the wall clock by more than ``audio.max_drift_s`` (a sender
  whose clock drifts, a server that sends too fast or starves): ``stream_drift``, and the stream is put back
  in step, by dropping the samples it is ahead or marking the time it is behind as a gap. The burst every
  connection starts with (what FFmpeg buffered while probing the stream, an Icecast server's burst-on-connect)
  is not drift: in a connection's first ``max_drift_s`` seconds, the drift origin moves along with a stream
  that runs ahead. Those samples are placed at the time they arrive, up to a few
  seconds after they were heard.

When audio flows again after a fault, ``stream_resumed`` says how long the gap was. Events are sent once
per outage, not once per retry. The URL's credentials never leave this module unmasked
(:func:`~daemon.audio.credentials.mask_credentials`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from daemon.audio.credentials import mask_credentials
from daemon.audio.ffmpeg_child import FfmpegChild, find_ffmpeg
from daemon.audio.ring import RingBuffer
from daemon.audio.sources import SourceStatus
from daemon.backoff import Backoff
from daemon.config import AudioConfig
from daemon.constants import POLL_S, SAMPLE_RATE
from daemon.errors import AudioError
from daemon.lifecycle import ManagedThread

log = logging.getLogger(__name__)

STABLE_S = 30.0
"""a connection that delivered audio this long starts the back-off afresh; shorter ones keep it growing"""

EventHandler = Callable[[str, str], None]
"""``on_event(kind, message)``: the MQTT publisher's ``publish_event``"""


class UrlSource(ManagedThread):
    """Decodes ``config.url`` into ``ring`` at the model rate; outages are waited out, never fatal."""

    def __init__(self, config: AudioConfig, ring: RingBuffer, on_event: EventHandler | None = None,
                 rng: random.Random | None = None, *, origin: float | None = None) -> None:
        """``origin``: monotonic time of stream sample 0 (None: when the thread starts); gaps are marked from it."""
        super().__init__("birdd-url-source", self._run)
        self._config = config
        self._ring = ring
        self._origin = origin
        self._on_event = on_event
        self._binary = find_ffmpeg()
        self._backoff = Backoff(config.retry_initial_s, config.retry_max_s, rng)
        self._stop = self.stop_event
        self._lock = threading.Lock()
        self.label = mask_credentials(config.url, config.url)
        """the URL as shown in logs, events, status and the detections' ``source``"""
        self._state = "starting"
        self._detail = self.label
        self._retries = 0
        self._stalls = 0
        self._resyncs = 0
        self._outage: str | None = None  # the fault being waited out (its event is sent once)
        self._catching_up = False  # too fast: dropping audio until the wall clock catches up

    def stop(self, timeout: float = 5.0) -> None:
        """End the child and the thread within ``timeout`` seconds, and close the ring."""
        super().stop(timeout)
        self._ring.close()

    def status(self) -> SourceStatus:
        """ok / waiting (with the masked reason) / stopped, reconnects, stalls and drift resyncs so far."""
        with self._lock:
            return SourceStatus(state=self._state, detail=self._detail, retries=self._retries,
                                stalls=self._stalls, resyncs=self._resyncs)

    def source_at(self, sample: int) -> str:
        """The masked URL: stable across restarts, so detection ids are too."""
        return self.label

    def _run(self) -> None:
        origin = time.monotonic() if self._origin is None else self._origin
        while not self._stop.is_set():
            reason, heard_s = self._connect_once(origin)
            if self._stop.is_set():
                break
            if heard_s >= STABLE_S:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            with self._lock:
                self._retries += 1
                self._state, self._detail = "waiting", reason
            log.warning("audio.url %s: %s; retrying in %.1f s", self.label, reason, delay)
            if self._stop.wait(delay):
                break
        with self._lock:
            self._state = "stopped"
        self._ring.close()

    def _connect_once(self, origin: float) -> tuple[str, float]:
        """Run one child until it fails: (the reason, seconds it delivered audio); ("", ...) when stopped."""
        try:
            child = FfmpegChild(self._config.url, self._config.rtsp_transport, self._binary)
        except AudioError as exc:
            self._fault("stream_error", str(exc))
            return str(exc), 0.0
        try:
            return self._pump(child, origin)
        finally:
            child.close()

    def _pump(self, child: FfmpegChild, origin: float) -> tuple[str, float]:
        started = last_audio = time.monotonic()
        base: tuple[int, float] | None = None  # (ring sample, monotonic time) of this connection's first audio
        while not self._stop.is_set():
            samples = child.read(POLL_S)
            now = time.monotonic()
            if samples.size:
                if base is None:
                    base = self._first_audio(origin, now)
                    started = now
                elif now - started < self._config.max_drift_s and self._ahead(samples.size, base, now) > 0:
                    base = (self._ring.written, now)  # the burst at connect: the drift origin follows it
                self._write_in_step(samples, base, now)
                last_audio = now
            elif child.ended:
                reason = child.exit_reason()
                self._fault("stream_error", reason)
                return reason, (now - started) if base else 0.0
            elif now - last_audio > self._config.stall_s:
                with self._lock:
                    self._stalls += 1
                reason = f"no audio for {self._config.stall_s:g} s: ffmpeg (pid {child.pid}) ended"
                self._fault("stream_stalled", reason)
                return reason, (now - started) if base else 0.0
        return "", 0.0

    def _first_audio(self, origin: float, now: float) -> tuple[int, float]:
        """Audio again: mark the time without it as a gap, report the recovery; the connection's drift origin."""
        missing = round((now - origin) * SAMPLE_RATE) - self._ring.written
        if missing > 0:
            self._ring.skip(missing)
        with self._lock:
            outage, self._outage = self._outage, None
            self._state, self._detail = "ok", self.label
        log.info("audio.url %s: streaming%s", self.label,
                 f" again after {missing / SAMPLE_RATE:.1f} s without audio" if outage else "")
        if outage is not None:
            self._event("stream_resumed", f"audio again after a gap of {max(0, missing) / SAMPLE_RATE:.1f} s "
                                          f"({outage})")
        self._catching_up = False
        return self._ring.written, now

    def _write_in_step(self, samples: np.ndarray, base: tuple[int, float], now: float) -> None:
        """Write ``samples``, keeping the stream within ``audio.max_drift_s`` of the wall clock."""
        expected = base[0] + round((now - base[1]) * SAMPLE_RATE)  # where the wall clock has the stream now
        ahead = self._ahead(samples.size, base, now)
        limit = self._config.max_drift_s * SAMPLE_RATE
        if ahead > limit and not self._catching_up:
            self._catching_up = True
            self._resynced(f"delivering too fast: {ahead / SAMPLE_RATE:.1f} s ahead of the wall clock; "
                           "dropping audio until the wall clock catches up")
        if self._catching_up:  # write nothing beyond the wall clock until it has caught up
            room = max(0, expected - self._ring.written)
            self._catching_up = room == 0
            samples = samples[:room]
        elif ahead < -limit:
            self._ring.skip(-ahead)
            self._resynced(f"delivering too slowly: {-ahead / SAMPLE_RATE:.1f} s behind the wall clock; "
                           "marked as a gap to resync")
        self._ring.write(samples)

    def _ahead(self, n: int, base: tuple[int, float], now: float) -> int:
        """Samples the stream would be ahead of the wall clock (since ``base``) after writing ``n`` more."""
        return self._ring.written + n - base[0] - round((now - base[1]) * SAMPLE_RATE)

    def _resynced(self, message: str) -> None:
        with self._lock:
            self._resyncs += 1
        log.warning("audio.url %s: %s", self.label, message)
        self._event("stream_drift", message)

    def _fault(self, kind: str, reason: str) -> None:
        """Report the first fault of an outage as an event (retries of the same outage are only logged)."""
        with self._lock:
            first, self._outage = self._outage is None, self._outage or reason
        if first:
            self._event(kind, reason)

    def _event(self, kind: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(kind, f"audio.url {self.label}: {mask_credentials(message, self._config.url)}")
