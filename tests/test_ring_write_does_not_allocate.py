"""write() runs in the PortAudio callback: it must not allocate arrays, even while wrapping and overrunning."""

import tracemalloc

import numpy as np

from daemon.audio.ring import RingBuffer


def test_many_writes_allocate_nothing_that_grows_with_the_data():
    ring = RingBuffer(32_000)
    block = np.ones(3_200, dtype=np.float32)
    odd = np.ones(1_234, dtype=np.float32)  # wraps at a different place each time
    for _ in range(20):
        ring.write(block)
        ring.write(odd)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(5_000):
            ring.write(block)
            ring.write(odd)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ring.overruns > 0  # the overrun path was exercised too
    assert current - base < 1_024
    assert peak - base < block.nbytes // 4  # a single array copy would be 12,800 bytes
