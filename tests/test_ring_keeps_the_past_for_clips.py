"""The ring hands out samples it has already passed to the reader (clips), across wraps and skips."""

from __future__ import annotations

import numpy as np

from daemon.audio.ring import RingBuffer


def stream(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)


def test_past_samples_equal_the_stream_after_they_were_read_and_wrapped():
    ring = RingBuffer(1_000)
    data = stream(2_500)
    for i in range(0, 2_500, 70):
        ring.write(data[i:i + 70])
        while (got := ring.read(64, timeout=0)) and got[1].size:
            pass
    (index, samples), = ring.copy_past(1_600, 2_400)
    assert index == 1_600
    np.testing.assert_array_equal(samples, data[1_600:2_400])


def test_overwritten_and_future_samples_are_missing():
    ring = RingBuffer(1_000)
    ring.write(stream(2_500))
    (index, samples), = ring.copy_past(1_000, 3_000)
    assert index == 1_500 and samples.size == 1_000  # 1000..1499 overwritten, 2500.. not written yet
    assert ring.copy_past(0, 1_400) == []


def test_a_skip_shows_as_a_gap_between_two_runs():
    ring = RingBuffer(1_000)
    ring.write(stream(300))
    ring.skip(200)  # samples 300..499 never heard
    ring.write(stream(300) + 1_000)
    runs = ring.copy_past(250, 560)
    assert [(index, samples.size) for index, samples in runs] == [(250, 50), (500, 60)]
    np.testing.assert_array_equal(runs[1][1], stream(60) + 1_000)


def test_a_waiting_producer_leaves_held_samples_alone():
    ring = RingBuffer(1_000)
    ring.write(stream(800))
    assert ring.read(500, timeout=0)[0] == 0
    ring.hold(200)
    assert ring.wait_for_space(400, timeout=0)  # 1000 - (800 - 200) = 400 free without touching 200..
    assert not ring.wait_for_space(401, timeout=0)
    ring.write(stream(400) + 800)
    (index, samples), = ring.copy_past(200, 500)
    assert index == 200 and samples.size == 300 and samples[0] == 200.0
    ring.hold(None)  # released: only the unread samples 500..1199 count
    assert ring.wait_for_space(300, timeout=0) and not ring.wait_for_space(301, timeout=0)
