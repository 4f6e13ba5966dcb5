"""A live HLS stream (``http://.../live.m3u8``, AAC segments served by an HTTP server on the loopback) is a URL
source like any other: its audio reaches the ring at real time, as heard."""

from __future__ import annotations

import time

import numpy as np
import pytest
from stream_servers import LiveHls, wait_until, write_wav

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration
RATE = 48_000
TONE_HZ = 1_000


def test_a_live_hls_stream_is_heard_at_real_time(url_source, tmp_path):
    seconds = np.arange(20 * RATE) / RATE
    stream = LiveHls(write_wav(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * TONE_HZ * seconds), RATE),
                     tmp_path / "hls")
    try:
        source, ring, events = url_source(stream.url, stall_s=5.0)
        wait_until(lambda: ring.written >= 2 * SAMPLE_RATE, 20, "2 s of the HLS stream")
        first, started = ring.written, time.monotonic()
        time.sleep(4.0)
        rate = (ring.written - first) / (time.monotonic() - started)
        _, heard = ring.copy_past(ring.written - SAMPLE_RATE, ring.written)[-1]
        state, seen = source.status().state, list(events)  # before the server goes: its end is a fault of its own
    finally:
        stream.close()
    assert state == "ok" and not [kind for kind, _ in seen if kind != "stream_resumed"], seen
    assert 0.6 * SAMPLE_RATE <= rate <= 1.4 * SAMPLE_RATE  # at the pace it is published (1-s segments), not as fast
    # as it downloads
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(heard.size)))
    assert np.fft.rfftfreq(heard.size, 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(TONE_HZ, abs=2)
    assert 0.15 < np.sqrt(np.mean(heard**2)) < 0.3  # the tone's level (0.3 / sqrt 2), through AAC and the resampler
