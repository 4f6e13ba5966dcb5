"""MicSource against a fake PortAudio (sounddevice.InputStream / query_devices replaced).

The fake device delivers a known signal in real time from its own thread, like PortAudio's
callback thread, and can be absent, vanish mid-stream, stall, or flag input overflows.
"""

from __future__ import annotations

import random
import threading
import time
import tracemalloc

import numpy as np
import pytest
import sounddevice as sd
import soxr

from daemon.audio import mic_source as source_mic
from daemon.audio.mic_source import MicSource
from daemon.audio.ring import RingBuffer
from daemon.config import AudioConfig

RATE = 32_000


def ramp(start: int, n: int) -> np.ndarray:
    """The fake's mono test signal: a sawtooth that names each capture sample's index (mod 4096)."""
    return ((np.arange(start, start + n) % 4096) / 4096).astype(np.float32)


class FakeStream:
    def __init__(self, world: FakePortAudio, *, device, samplerate, channels, dtype, blocksize, callback,
                 finished_callback) -> None:
        assert dtype == "float32" and channels == world.channels and device == 3
        self.world, self.rate, self.channels, self.blocksize = world, samplerate, channels, blocksize
        self.callback, self.finished_callback = callback, finished_callback
        self.active = False
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._deliver, daemon=True)

    def start(self) -> None:
        self.active = True
        self._thread.start()

    def _deliver(self) -> None:
        origin, index, block_no = time.monotonic(), 0, 0
        while not self._halt.is_set():
            indata = self.world.signal(index, self.blocksize, self.rate)
            flags = sd.CallbackFlags()
            if self.world.overflow_every and block_no % self.world.overflow_every == 0:
                flags.input_overflow = True
                self.world.overflows_flagged += 1
            self.callback(indata, self.blocksize, None, flags)
            index, block_no = index + self.blocksize, block_no + 1
            self._halt.wait(max(0.0, origin + index / self.rate - time.monotonic()))

    def lose(self) -> None:
        """The device vanishes: PortAudio stops the stream and calls finished_callback."""
        self._halt.set()
        self._thread.join()
        self.active = False
        self.finished_callback()

    def stall(self) -> None:
        """Callbacks stop arriving but the stream still claims to be active."""
        self._halt.set()
        self._thread.join()

    def abort(self) -> None:
        if not self._halt.is_set() or self.active:
            self._halt.set()
            self._thread.join()
            self.active = False
            self.finished_callback()

    def close(self) -> None:
        pass


class FakePortAudio:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, rate: int = RATE, channels: int = 1) -> None:
        self.present = True
        self.rate, self.channels = rate, channels
        self.streams: list[FakeStream] = []
        self.overflow_every = 0
        self.overflows_flagged = 0
        self.refreshes = 0
        monkeypatch.setattr(sd, "InputStream", self._open)
        monkeypatch.setattr(sd, "query_devices", self._query)
        monkeypatch.setattr(source_mic, "_refresh_device_list", self._refresh)

    def info(self) -> dict:
        return {"name": "Fake USB Mic: Audio (hw:1,0)", "index": 3, "max_input_channels": self.channels,
                "default_samplerate": float(self.rate)}

    def signal(self, start: int, n: int, rate: int) -> np.ndarray:
        mono = ramp(start, n)
        return np.repeat(mono[:, None], self.channels, axis=1)

    def _query(self, device=None, kind=None):
        devices = [self.info()] if self.present else []
        if kind == "input":
            if not devices:
                raise sd.PortAudioError("Error querying device -1")
            return devices[0]
        return devices

    def _open(self, **kwargs) -> FakeStream:
        if not self.present:
            raise sd.PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream

    def _refresh(self) -> None:
        self.refreshes += 1


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def make_source(ring: RingBuffer, **overrides) -> MicSource:
    settings = {"device": "usb mic", "block_ms": 20, "retry_initial_s": 0.02, "retry_max_s": 0.1, **overrides}
    return MicSource(AudioConfig(**settings), ring, rng=random.Random(0))


def test_device_missing_at_start_is_retried_and_its_absence_becomes_a_gap(monkeypatch):
    fake = FakePortAudio(monkeypatch)
    fake.present = False
    ring = RingBuffer(10 * RATE)
    source = make_source(ring)
    started = time.monotonic()
    source.start()
    wait_until(lambda: source.status().retries >= 3)
    status = source.status()
    assert status.state == "waiting"
    assert "usb mic" in status.detail
    assert source.is_alive()
    assert ring.written == 0
    assert fake.refreshes >= 2  # the device list is re-read before each attempt

    appeared = time.monotonic()
    fake.present = True
    wait_until(lambda: source.status().state == "ok")
    opened = time.monotonic()
    assert source.status().detail == "Fake USB Mic: Audio (hw:1,0)"
    start, block = ring.read(RATE, timeout=2)
    # stream time kept running while the device was away: sample 0 is when start() was called
    assert (appeared - started - 0.05) * RATE <= start <= (opened - started) * RATE
    assert ring.skipped_samples == start
    np.testing.assert_array_equal(block, ramp(0, block.size))  # and nothing was invented
    source.stop()
    assert not source.is_alive()
    assert source.status().state == "stopped"
    while ring.read(RATE, timeout=1) is not None:
        pass


@pytest.mark.parametrize("failure", ["lost", "stalled"])
def test_device_lost_mid_stream_is_reopened_after_a_marked_gap(monkeypatch, failure):
    monkeypatch.setattr(source_mic, "DEVICE_STALL_S", 0.2)
    fake = FakePortAudio(monkeypatch)
    ring = RingBuffer(10 * RATE)
    source = make_source(ring, retry_initial_s=0.2, retry_max_s=0.2)
    source.start()
    wait_until(lambda: source.status().state == "ok")
    first_end = 0
    while first_end < RATE // 4:
        start, block = ring.read(RATE, timeout=1)
        assert start == first_end
        np.testing.assert_array_equal(block, ramp(start, block.size))
        first_end += block.size

    getattr(fake.streams[0], "lose" if failure == "lost" else "stall")()
    lost = time.monotonic()
    wait_until(lambda: source.status().state == "waiting")
    assert ("stream stopped unexpectedly" if failure == "lost" else "no audio") in source.status().detail
    wait_until(lambda: source.status().state == "ok" and len(fake.streams) == 2)
    back = time.monotonic()
    assert source.status().retries == 1

    segments = []
    while not segments or segments[-1][0] == first_end + sum(s[1].size for s in segments[:-1]):
        segments.append(ring.read(RATE, timeout=2))
    gap_start = first_end + sum(s[1].size for s in segments[:-1])
    resumed, block = segments[-1]
    # the gap spans the outage: at least the retry delay (0.1 to 0.2 s), less the fake's one block of lead
    assert 0.08 * RATE <= resumed - gap_start <= (back - lost + 0.05) * RATE
    assert ring.skipped_samples == resumed - gap_start
    np.testing.assert_array_equal(block, ramp(0, block.size))  # the new stream's first samples
    source.stop()


def test_input_overflow_is_counted_as_an_overrun(monkeypatch):
    fake = FakePortAudio(monkeypatch)
    fake.overflow_every = 4
    ring = RingBuffer(10 * RATE)
    source = make_source(ring)
    source.start()
    wait_until(lambda: fake.overflows_flagged >= 3)
    source.stop()
    assert fake.overflows_flagged >= 3
    assert source.status().overruns == fake.overflows_flagged


def test_stereo_device_at_48k_is_downmixed_and_resampled_to_the_model_rate(monkeypatch):
    fake = FakePortAudio(monkeypatch, rate=48_000, channels=2)
    tone = np.sin(2 * np.pi * 440 * np.arange(10 * 48_000) / 48_000).astype(np.float32)
    fake.signal = lambda start, n, rate: np.stack([tone[start:start + n], np.zeros(n, np.float32)], axis=1)
    ring = RingBuffer(10 * RATE)
    source = make_source(ring, capture_rate=0)
    source.start()
    got = np.zeros(0, np.float32)
    while got.size < RATE // 2:
        start, block = ring.read(RATE, timeout=1)
        assert start == got.size
        got = np.concatenate([got, block])
    source.stop()
    expected = 0.5 * soxr.resample(tone[:48_000], 48_000, RATE)[:got.size]
    np.testing.assert_allclose(got[200:], expected[200:], atol=1e-3)


def test_callback_allocates_nothing_that_grows_with_the_block(monkeypatch):
    FakePortAudio(monkeypatch, channels=2)
    capture = source_mic._Capture(AudioConfig(device="usb", block_ms=100))
    indata = np.ones((3200, 2), dtype=np.float32)
    flags = sd.CallbackFlags()
    for _ in range(20):
        capture._callback(indata, 3200, None, flags)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(2000):
            capture._callback(indata, 3200, None, flags)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - base < 1024
    assert peak - base < 3200  # the downmixed block alone would be 12,800 bytes
    _, block = capture.ring.read(100)
    np.testing.assert_array_equal(block, np.ones(100, np.float32))
