"""Detections held in memory while the outbox file takes no write still reach the broker, in order, at once.

The read-only fault is injected as in test_outbox_survives_full_and_read_only_disk.py (``PRAGMA query_only`` on
the outbox's own connection: SQLITE_READONLY on every write); the broker is a real mosquitto. A held detection
goes out under the ``seq`` and payload it has in the file once written; one the broker acknowledged is never
written, and one it did not is written under that seq and published again as the file's backlog.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon.config import OutboxConfig, config_from_dict
from daemon.sinks.mqtt import MqttPublisher
from daemon.sinks.outbox import Outbox
from daemon.write_faults import RETRY_INITIAL_S

DETECTIONS = "birdd/test/detections"


def _read_only(outbox: Outbox, on: bool) -> None:
    outbox._conn.execute(f"PRAGMA query_only={int(on)}")  # fault injection: SQLITE_READONLY on every write


def _catch_up(outbox: Outbox) -> None:
    """Make the file writable again and retry until the back-off lets a retry through (it doubles per failure:
    these tests fail a few times at most); the held ones are written."""
    _read_only(outbox, False)
    deadline = time.monotonic() + RETRY_INITIAL_S * 8
    while outbox.write_error and time.monotonic() < deadline:
        time.sleep(0.05)
        outbox.retry_held()
    assert outbox.write_error == "" and outbox.held() == (0, 0)


def _payload(i: int) -> dict:
    return {"detection_id": f"d{i:04d}", "source": "mic", "start": f"{i:06d}", "id": i, "clip": None}


def test_held_detections_are_pending_under_their_file_seq_and_only_unacknowledged_ones_are_written(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)))
    assert [outbox.put(_payload(i)) for i in range(3)] == [1, 2, 3]
    assert outbox.ack(1)
    _read_only(outbox, True)
    assert [outbox.put(_payload(i)) for i in range(3, 9)] == [None] * 6  # held
    assert outbox.last_seq == 9 and outbox.held() == (6, 0)
    pending = outbox.pending(100)
    assert pending == [(seq, _payload(seq - 1)) for seq in range(2, 10)]  # the file's rows, then the held ones
    assert outbox.pending(3, after=4) == pending[3:6]
    assert outbox.ack(2) is False  # a file row: its removal waits for the retry
    assert outbox.ack(4) and outbox.ack(5) and outbox.ack(9)  # held: forgotten at once, never written
    assert outbox.held() == (3, 0)
    _catch_up(outbox)
    in_file = [(6, _payload(5)), (7, _payload(6)), (8, _payload(7))]
    assert outbox.pending(100) == [(3, _payload(2)), *in_file]  # the same seqs and payloads as while held
    assert outbox.ack(7) and outbox.backlog() == 3  # a held one in flight when it was written: acked in the file
    assert outbox.put(_payload(99)) == 10  # seqs go on after the acknowledged 9
    outbox.close()
    reopened = Outbox(OutboxConfig(path=str(path)))
    assert reopened.last_seq == 10 and [seq for seq, _ in reopened.pending(100)] == [3, 6, 8, 10]
    reopened.close()


def test_all_held_acknowledged_the_file_read_only_says_so_and_the_catch_up_keeps_seq_and_id(tmp_path: Path):
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    _read_only(outbox, True)
    outbox.put(_payload(5))
    assert outbox.ack(1) and outbox.held() == (0, 0)  # delivered from memory
    time.sleep(RETRY_INITIAL_S * 1.1)
    outbox.retry_held()
    assert "readonly" in outbox.write_error  # the retry still writes (the seq's high mark): it still fails
    _catch_up(outbox)
    outbox.close()
    reopened = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    assert reopened.last_seq == 1 and reopened.backlog() == 0  # seqs never go back, even for one never written
    assert reopened.highest_id == 5  # nor the ids: its id was published, so it is never issued again
    reopened.close()


@pytest.mark.integration
def test_broker_gets_held_detections_in_order_while_read_only_and_none_twice_after(mosquitto, subscribe,
                                                                                   config_table, tmp_path):
    config = config_from_dict(config_table(mosquitto))
    sub = subscribe(mosquitto, DETECTIONS)
    outbox = Outbox(config.outbox)
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    for i in range(3):
        outbox.put(_payload(i))
    sub.wait_for(lambda ms: len(ms) == 3, topic=DETECTIONS)
    _read_only(outbox, True)
    for i in range(3, 40):
        assert outbox.put(_payload(i)) is None
    # The file takes no write all along: they come from memory, at once (not after the back-off), in order.
    got = sub.wait_for(lambda ms: len(ms) >= 40, topic=DETECTIONS, timeout=RETRY_INITIAL_S * 5)
    assert [m.json() for m in got] == [_payload(i) for i in range(40)]
    deadline = time.monotonic() + 5
    while outbox.held()[0] and time.monotonic() < deadline:  # PUBACKs land after the subscriber has them
        time.sleep(0.05)
    assert outbox.held() == (0, 0) and "readonly" in outbox.write_error  # acknowledged: nothing left to lose
    publisher.stop()
    for i in range(40, 45):  # the broker cannot acknowledge these: they stay held
        outbox.put(_payload(i))
    assert outbox.held() == (5, 0)
    _catch_up(outbox)
    assert [payload for _, payload in outbox.pending(100)] == [_payload(i) for i in range(40, 45)]
    publisher = MqttPublisher(config, outbox)
    publisher.start()
    got = sub.wait_for(lambda ms: len(ms) >= 45, topic=DETECTIONS)
    time.sleep(0.5)  # a duplicate would arrive meanwhile
    assert [m.json() for m in sub.messages(DETECTIONS)] == [_payload(i) for i in range(45)]  # none twice
    publisher.stop()
    assert outbox.backlog() == 0
    outbox.close()
