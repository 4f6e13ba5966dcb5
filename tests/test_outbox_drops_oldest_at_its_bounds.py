"""At max_rows or max_age_days the outbox drops the oldest rows, counts them (persisted) and logs it."""

import logging

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox


def test_max_rows_drops_the_oldest_and_counts_them(tmp_path, make_detection, caplog):
    config = OutboxConfig(path=str(tmp_path / "outbox.sqlite"), max_rows=3)
    outbox = Outbox(config)
    with caplog.at_level(logging.WARNING, logger="daemon.sinks.outbox"):
        seqs = [outbox.put(make_detection(i)) for i in range(5)]
    assert [seq for seq, _ in outbox.pending(10)] == seqs[2:]
    assert outbox.backlog() == 3
    assert outbox.dropped() == 2
    assert sum("max_rows=3" in r.getMessage() for r in caplog.records) == 2
    outbox.close()

    outbox = Outbox(config)
    assert outbox.dropped() == 2  # persisted
    assert outbox.backlog() == 3
    outbox.close()


def test_rows_older_than_max_age_are_dropped_on_put_and_on_open(tmp_path, make_detection):
    now = [1_800_000_000.0]
    config = OutboxConfig(path=str(tmp_path / "outbox.sqlite"), max_age_days=1.0)
    outbox = Outbox(config, clock=lambda: now[0])
    for i in range(3):
        outbox.put(make_detection(i))
    now[0] += 0.5 * 86_400
    young = outbox.put(make_detection(3))
    now[0] += 0.6 * 86_400  # the first three are now 1.1 days old, the fourth 0.6 days
    newest = outbox.put(make_detection(4))
    assert [seq for seq, _ in outbox.pending(10)] == [young, newest]
    assert outbox.dropped() == 3
    outbox.close()

    now[0] += 0.5 * 86_400  # 'young' is 1.1 days old: dropped when the file is opened again
    outbox = Outbox(config, clock=lambda: now[0])
    assert [seq for seq, _ in outbox.pending(10)] == [newest]
    assert outbox.dropped() == 4
    outbox.close()
