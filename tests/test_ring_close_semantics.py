"""Closing the ring ends the stream: a waiting reader wakes, leftovers are read, then None."""

import threading
import time

import numpy as np
import pytest

from daemon.audio.ring import RingBuffer


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "100"])
def test_bad_capacity_is_rejected(bad):
    with pytest.raises(ValueError, match="capacity_samples"):
        RingBuffer(bad)


def test_close_wakes_a_blocked_reader():
    ring = RingBuffer(100)
    result = []
    reader = threading.Thread(target=lambda: result.append(ring.read(10)))
    reader.start()
    time.sleep(0.05)
    assert reader.is_alive()  # waiting without a timeout
    ring.close()
    reader.join(2)
    assert not reader.is_alive()
    assert result == [None]


def test_read_after_close_returns_what_is_left_then_end_of_stream():
    ring = RingBuffer(100)
    ring.write(np.arange(30, dtype=np.float32))
    ring.close()
    assert ring.closed
    assert ring.read(20)[0] == 0
    start, block = ring.read(20)
    assert (start, block.size) == (20, 10)
    assert ring.read(20) is None
    assert ring.read(20) is None


def test_read_timeout_returns_empty_block_at_next_index():
    ring = RingBuffer(100)
    ring.write(np.zeros(7, dtype=np.float32))
    ring.read(100)
    ring.skip(5)
    t0 = time.monotonic()
    start, block = ring.read(10, timeout=0.05)
    assert time.monotonic() - t0 >= 0.045
    assert (start, block.size) == (12, 0)


def test_wait_for_space_returns_once_the_reader_frees_room():
    ring = RingBuffer(10)
    ring.write(np.zeros(10, dtype=np.float32))
    assert not ring.wait_for_space(4, timeout=0.02)
    threading.Timer(0.05, lambda: ring.read(5)).start()
    assert ring.wait_for_space(4, timeout=2)


def test_close_wakes_a_producer_waiting_for_space():
    ring = RingBuffer(10)
    ring.write(np.zeros(10, dtype=np.float32))
    threading.Timer(0.05, ring.close).start()
    assert ring.wait_for_space(10, timeout=2)
