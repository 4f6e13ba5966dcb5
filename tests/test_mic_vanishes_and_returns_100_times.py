"""The microphone unplugged and plugged back 100 times: every return is picked up, every absence is one
marked gap in the stream, and nothing piles up (threads, streams left open, ring overruns)."""

from __future__ import annotations

import threading

from test_source_mic_fake_portaudio import RATE, FakePortAudio, make_source, ramp, wait_until

from daemon.audio.ring import RingBuffer

CYCLES = 100


class Reader(threading.Thread):
    """Drains the ring like the tokenizer; counts the jumps in stream time (gaps) and checks each block."""

    def __init__(self, ring: RingBuffer) -> None:
        super().__init__(daemon=True)
        self.ring, self.gaps, self.samples, self.bad_blocks = ring, 0, 0, 0
        self.position = 0
        """the stream sample after the last block read"""

    def run(self) -> None:
        while (item := self.ring.read(RATE // 10, timeout=5)) is not None:
            start, block = item
            if start != self.position:
                self.gaps += 1
                self.bad_blocks += int(block[0] != ramp(0, 1)[0])  # a new stream starts at its sample 0
            self.position = start + block.size
            self.samples += block.size


def test_mic_unplugged_and_back_100_times(monkeypatch):
    fake = FakePortAudio(monkeypatch)
    ring = RingBuffer(10 * RATE)
    source = make_source(ring, retry_initial_s=0.01, retry_max_s=0.02)
    reader = Reader(ring)
    reader.start()
    source.start()
    threads_at_start = threading.active_count()
    read_at_loss = -1
    for cycle in range(CYCLES):
        wait_until(lambda n=cycle + 1: source.status().state == "ok" and len(fake.streams) == n)
        # the reader has read the new stream's first samples (and so seen the gap) before the next loss
        wait_until(lambda n=cycle, read=read_at_loss: reader.gaps == n and reader.samples > read)
        read_at_loss = reader.samples
        fake.present = False
        fake.streams[-1].lose()
        wait_until(lambda: source.status().state == "waiting")
        assert source.is_alive(), source.error
        fake.present = True
        assert threading.active_count() <= threads_at_start + 1  # the lost stream's thread is gone
    wait_until(lambda: source.status().state == "ok" and len(fake.streams) == CYCLES + 1)
    source.stop()
    reader.join(10)
    assert not source.is_alive() and source.error is None
    assert sum(stream.active for stream in fake.streams) == 0
    assert reader.gaps == CYCLES and reader.bad_blocks == 0
    assert ring.overruns == 0 and source.status().overruns == 0
    assert source.status().retries >= CYCLES
