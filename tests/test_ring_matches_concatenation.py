"""The ring hands out exactly the samples written, in order, with their stream indices, however blocks are cut."""

import threading

import numpy as np

from daemon.audio.ring import RingBuffer


def test_random_blocks_read_back_as_the_concatenation(rng):
    ring = RingBuffer(1000)
    reference = rng.standard_normal(50_000).astype(np.float32)
    got, pos_w, pos_r = [], 0, 0
    while pos_r < reference.size:
        if pos_w < reference.size and rng.random() < 0.5:
            n = min(int(rng.integers(1, 400)), ring.capacity - (pos_w - pos_r), reference.size - pos_w)
            ring.write(reference[pos_w:pos_w + n])
            pos_w += n
        else:
            start, block = ring.read(int(rng.integers(1, 700)), timeout=0)
            assert start == pos_r
            got.append(block)
            pos_r += block.size
    assert ring.written == reference.size
    np.testing.assert_array_equal(np.concatenate(got), reference)
    assert (ring.overruns, ring.lost_samples) == (0, 0)


def test_block_of_exactly_capacity_wraps_correctly():
    ring = RingBuffer(8)
    ring.write(np.arange(5, dtype=np.float32))
    assert ring.read(5)[1].tolist() == [0, 1, 2, 3, 4]
    ring.write(np.arange(5, 13, dtype=np.float32))  # starts at physical 5, wraps after 3
    start, block = ring.read(100)
    assert start == 5
    assert block.tolist() == list(range(5, 13))


def test_threaded_producer_with_back_pressure_loses_nothing(rng):
    ring = RingBuffer(2048)
    reference = rng.standard_normal(200_000).astype(np.float32)
    sizes = rng.integers(1, 700, size=2000)

    def produce() -> None:
        pos = 0
        for n in sizes:
            n = min(int(n), reference.size - pos)
            if n == 0:
                break
            assert ring.wait_for_space(n, timeout=5)
            ring.write(reference[pos:pos + n])
            pos += n
        ring.write(reference[pos:])
        ring.close()

    producer = threading.Thread(target=produce)
    producer.start()
    got, expected_start = [], 0
    while (item := ring.read(997, timeout=5)) is not None:
        start, block = item
        assert start == expected_start
        expected_start += block.size
        got.append(block)
    producer.join(5)
    np.testing.assert_array_equal(np.concatenate(got), reference)
    assert ring.lost_samples == 0
