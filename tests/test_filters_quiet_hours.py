"""Quiet hours by a fixed clock: local ranges (past midnight too, in a named time zone); detections dropped, or
audio withheld from the archive and the clips while detections go on."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from filter_fixtures import SPECIES, reported, run, windows

from daemon.config import FiltersConfig
from daemon.constants import SAMPLE_RATE
from daemon.filters.audio_gate import MaskedAudio
from daemon.filters.chain import build_filters
from daemon.filters.mask import PrivacyMask
from daemon.filters.quiet import QuietHours
from daemon.filters.stats import FilterStats
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.scoring import AudioBlock

BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0) -> float:
    return datetime(2026, 6, 1, hour, minute, tzinfo=BERLIN).timestamp()


def test_ranges_run_past_midnight_in_the_station_time_zone():
    quiet = QuietHours(["22:00-06:00", "12:00-12:30"], "Europe/Berlin")
    assert [quiet.at(at(h, m)) for h, m in ((21, 59), (22, 0), (3, 0), (5, 59), (6, 0), (12, 15), (12, 30))] == [
        False, True, True, True, False, True, False]


def test_detections_in_quiet_hours_are_dropped_and_counted():
    stats = FilterStats()
    clock = StreamClock(at(5, 59, ) + 40)  # windows end at 05:59:45, 05:59:50, ... 06:00:10
    chain = build_filters(FiltersConfig(quiet_hours=["22:00-06:00"], quiet_timezone="Europe/Berlin"), SPECIES,
                          clock, stats, None)
    results = windows([{"eurbla": 0.9}] * 6, clock)
    assert [w for w, _ in reported(run(chain, results))] == [3, 4, 5]
    assert stats.quiet_dropped == 3


class Blocks:
    def __init__(self) -> None:
        self.blocks: list[AudioBlock] = []
        self.ended = False

    def put_audio(self, block: AudioBlock) -> None:
        self.blocks.append(block)

    def end_audio(self) -> None:
        self.ended = True


def test_quiet_audio_mode_keeps_detections_and_pauses_the_archive():
    stats, mask = FilterStats(), PrivacyMask()
    clock = StreamClock(at(6) - 10)  # 10 s of quiet hours, then 10 s after
    chain = build_filters(FiltersConfig(quiet_hours=["22:00-06:00"], quiet_mode="audio",
                                        quiet_timezone="Europe/Berlin"), SPECIES, clock, stats, mask)
    archive = Blocks()
    gate = MaskedAudio(archive, mask, stats)
    block = SAMPLE_RATE // 10
    for i in range(200):
        audio = AudioBlock(i * block, np.ones(block, np.float32), "mic")
        chain.hear(audio)
        gate.put_audio(audio)
    chain.flush()
    gate.end_audio()
    assert archive.ended and archive.blocks[0].start_sample == 10 * SAMPLE_RATE
    assert sum(b.samples.size for b in archive.blocks) == 10 * SAMPLE_RATE
    assert stats.quiet_audio_s == pytest.approx(10.0) and stats.audio_withheld_s == pytest.approx(10.0)
    assert mask.covers(0, 10 * SAMPLE_RATE) and not mask.touches(10 * SAMPLE_RATE, 20 * SAMPLE_RATE)
    assert reported(run(chain, windows([{"eurbla": 0.9}] * 2, clock))) == [(0, "eurbla"), (1, "eurbla")]
