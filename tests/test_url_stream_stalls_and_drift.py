"""A URL source against real servers on the loopback: a stall at connect or mid-stream, a stream too fast or too slow.

Each fault is one log line, a status event and a retry (or a resync); the time without audio is a gap in the
ring, so the ring's clock stays with the wall clock.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from stream_servers import PacedWavServer, SilentServer, wait_until

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration
RATE = 16_000


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)


def test_a_server_that_accepts_and_sends_nothing_is_a_stall_retried(url_source, caplog):
    server = SilentServer()
    try:
        with caplog.at_level(logging.WARNING, logger="daemon.audio.url_source"):
            source, ring, events = url_source(f"rtsp://cam:pw123@127.0.0.1:{server.port}/live", stall_s=0.6)
            wait_until(lambda: source.status().stalls >= 3, 8, "three stalls")
        status = source.status()
        assert status.state in ("waiting", "starting") and "no audio for 0.6 s" in status.detail
        assert server.accepted >= 2  # killed and reconnected
        assert [kind for kind, _ in events] == ["stream_stalled"]  # once per outage, not per retry
        stalls = [r.getMessage() for r in caplog.records if "no audio for" in r.getMessage()]
        assert len(stalls) >= 2 and all("\n" not in line and "retrying in" in line for line in stalls)
        assert all("pw123" not in text for text in [*stalls, status.detail, *(m for _, m in events)])
        assert ring.written == 0
    finally:
        server.close()


def test_a_stream_that_stops_mid_way_is_killed_reconnected_and_the_gap_marked(url_source):
    server = PacedWavServer(tone(60), RATE, stall_after_s=7.0, burst_s=6.0)
    try:
        started = time.monotonic()
        source, ring, events = url_source(server.url, stall_s=2.0)
        wait_until(lambda: any(kind == "stream_resumed" for kind, _ in events), 15, "the stream resumed")
        elapsed = time.monotonic() - started
        kinds = [kind for kind, _ in events]
        assert kinds[:2] == ["stream_stalled", "stream_resumed"]
        assert "no audio for 2 s" in events[0][1] and "after a gap of" in events[1][1]
        assert source.status().stalls == 1 and source.status().state == "ok"
        # the ring's clock is the wall clock's, ahead by no more than the two connections' bursts (6 s each)
        assert elapsed - 1.0 < ring.written / SAMPLE_RATE < elapsed + 2 * 6.0 + 1.0
    finally:
        server.close()


@pytest.mark.parametrize("speed, word", [(2.0, "too fast"), (0.5, "too slowly")])
def test_a_stream_off_the_wall_clock_is_reported_and_resynced(url_source, speed, word):
    server = PacedWavServer(tone(60), RATE, speed=speed)
    try:
        started = time.monotonic()
        source, ring, events = url_source(server.url, max_drift_s=1.0, stall_s=5.0)
        wait_until(lambda: source.status().resyncs >= 1, 10, "a resync")
        drift = [message for kind, message in events if kind == "stream_drift"]
        assert drift and word in drift[0]
        time.sleep(0.5)
        # after the resync the ring is within max_drift_s (plus a read) of the wall clock, give or take the 6-s burst
        # the connection started with
        ahead = ring.written / SAMPLE_RATE - (time.monotonic() - started)
        assert -1.6 < ahead < 6.0 + 1.6
        assert source.status().state == "ok"
    finally:
        server.close()
