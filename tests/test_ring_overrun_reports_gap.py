"""When the producer laps the consumer, the loss is counted and the consumer sees the stream index jump."""

import numpy as np

from daemon.audio.ring import RingBuffer


def test_lapped_consumer_gets_newest_samples_after_a_gap():
    ring = RingBuffer(100)
    data = np.arange(250, dtype=np.float32)
    ring.write(data[:60])
    assert ring.read(10)[0] == 0
    ring.write(data[60:250])  # one write larger than the ring
    assert ring.overruns == 1
    assert ring.lost_samples == 140  # samples 10..149 were never read
    start, block = ring.read(1000)
    assert start == 150
    np.testing.assert_array_equal(block, data[150:250])


def test_each_lapping_write_is_one_overrun_event():
    ring = RingBuffer(10)
    for _ in range(5):
        ring.write(np.ones(4, dtype=np.float32))  # 20 written, 10 kept
    assert (ring.overruns, ring.lost_samples) == (3, 10)
    assert ring.read(100)[0] == 10


def test_skip_marks_a_gap_without_taking_space():
    ring = RingBuffer(10)
    ring.write(np.full(6, 1, dtype=np.float32))
    ring.skip(1000)
    ring.write(np.full(4, 2, dtype=np.float32))
    assert ring.written == 1010
    assert ring.lost_samples == 0
    start, block = ring.read(100)
    assert (start, block.tolist()) == (0, [1] * 6)  # a read stops at the gap
    start, block = ring.read(100)
    assert (start, block.tolist()) == (1006, [2] * 4)
    assert ring.skipped_samples == 1000


def test_random_writes_skips_and_reads_never_misplace_a_sample(rng):
    """Every sample handed out sits at its true stream index; read + lost + skipped == written."""
    ring = RingBuffer(500)
    reference: list[np.ndarray] = []  # stream content, NaN where skipped
    last_end, n_read = 0, 0
    for _ in range(3000):
        action = rng.random()
        if action < 0.45:
            block = rng.standard_normal(int(rng.integers(1, 300))).astype(np.float32)
            ring.write(block)
            reference.append(block)
        elif action < 0.5:
            n = int(rng.integers(0, 200))
            ring.skip(n)
            reference.append(np.full(n, np.nan, dtype=np.float32))
        else:
            start, block = ring.read(int(rng.integers(1, 400)), timeout=0)
            stream = np.concatenate(reference) if reference else np.zeros(0, np.float32)
            assert start >= last_end
            np.testing.assert_array_equal(block, stream[start:start + block.size])
            last_end, n_read = start + block.size, n_read + block.size
    ring.close()
    while (item := ring.read(10_000)) is not None:
        n_read += item[1].size
    assert n_read + ring.lost_samples + ring.skipped_samples == ring.written
    assert ring.written == sum(r.size for r in reference)
    assert ring.overruns > 0 and ring.skipped_samples > 0
