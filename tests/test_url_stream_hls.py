"""A live HLS stream (``http://.../live.m3u8``, AAC segments served by an HTTP server on the loopback) is a URL
source like any other: its audio reaches the ring at real time, as heard."""

from __future__ import annotations

import numpy as np
import pytest
from stream_servers import LiveHls, assert_tone, hear, write_wav

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
        rate, heard, state, seen = hear(source, ring, events, "the HLS stream")
    finally:
        stream.close()
    assert state == "ok" and not [kind for kind, _ in seen if kind != "stream_resumed"], seen
    assert 0.6 * SAMPLE_RATE <= rate <= 1.4 * SAMPLE_RATE  # at the pace it is published (1-s segments), not as fast
    # as it downloads
    assert_tone(heard, TONE_HZ)  # through AAC and the resampler
