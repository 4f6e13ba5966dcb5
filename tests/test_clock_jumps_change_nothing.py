"""The wall clock jumping forward and back by hours (NTP's first sync, a dead RTC battery) changes nothing
that matters: detection timestamps keep their order, the outbox's age bound is not triggered, and retries
keep their back-off (they run on the monotonic clock)."""

from __future__ import annotations

import itertools
import logging
import time

from daemon.config import OutboxConfig, config_from_dict
from daemon.pipeline.detection import StreamClock
from daemon.sinks import mqtt
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox

HOURS = 3600.0


class JumpingClock:
    """A wall clock that the test moves by hours; otherwise it follows the real one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def test_outbox_keeps_order_and_drops_nothing_across_jumps(tmp_path):
    clock = JumpingClock()
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite"), max_age_days=1.0), clock=clock)
    for i, offset in enumerate([0, 6 * HOURS, -12 * HOURS, 20 * HOURS, -20 * HOURS, 0]):
        clock.offset = offset
        outbox.put({"n": i})
    assert outbox.dropped() == 0
    assert [p["n"] for _, p in outbox.pending(100)] == list(range(6))  # order is seq order, never the clock's
    outbox.close()


def test_detection_times_come_from_the_stream_clock_not_the_wall_clock(monkeypatch):
    stream = StreamClock()
    stream.start()
    ends, real = [], time.time
    for i, offset in enumerate([0, -5 * HOURS, 5 * HOURS, -1 * HOURS]):
        monkeypatch.setattr(time, "time", lambda offset=offset: real() + offset)
        ends.append(stream.at((i + 1) * 160_000))
    assert ends == sorted(ends) and ends[1] - ends[0] == 5.0


def test_reconnect_back_off_ignores_wall_clock_jumps(tmp_path, config_table, monkeypatch, caplog):
    config = config_from_dict(config_table(None, reconnect_min_s=0.2, reconnect_max_s=0.4))  # nobody listens
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    jumps = itertools.cycle([4 * HOURS, -8 * HOURS])
    real = time.time
    offset = [0.0]

    def jumping() -> float:
        offset[0] += next(jumps)
        return real() + offset[0]

    monkeypatch.setattr(mqtt.time, "time", jumping)  # every wall-clock read jumps by hours
    with caplog.at_level(logging.WARNING, logger="daemon.sinks.mqtt"):
        started = time.monotonic()
        publisher.start()
        time.sleep(2.0)
        publisher.stop(timeout=1.0)
        elapsed = time.monotonic() - started
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert 2 <= len(retries) <= elapsed / 0.1 + 1  # no burst: each wait is at least half of 0.2 s
    outbox.close()
