"""Each outbox target has its own cursor: a row is gone only when every target has it; refusals, drops and
counts are per target, persisted, and a version 1 file migrates with its rows waiting for the broker."""

import sqlite3

import pytest

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox

TARGETS = ("mqtt", "birdweather", "webhook:a")


def _open(tmp_path, targets=TARGETS, **config) -> Outbox:
    return Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite"), **config), targets=targets)


def _seqs(outbox: Outbox, target: str) -> list[int]:
    return [seq for seq, _ in outbox.pending(100, target=target)]


def test_a_row_stays_until_every_target_has_it(tmp_path):
    outbox = _open(tmp_path)
    seqs = [outbox.put({"n": i}) for i in range(4)]
    assert outbox.ack(seqs[0], target="mqtt") and outbox.ack(seqs[0], target="birdweather")
    assert outbox.backlog() == 4  # the webhook has not had it
    assert _seqs(outbox, "mqtt") == seqs[1:] and _seqs(outbox, "webhook:a") == seqs
    assert outbox.ack(seqs[0], target="webhook:a", skipped=True)
    assert outbox.backlog() == 3
    assert outbox.ack(seqs[0], target="mqtt") is False  # done already
    counters = {name: outbox.target_counters(name) for name in TARGETS}
    assert [(c.backlog, c.delivered, c.skipped) for c in counters.values()] == [(3, 1, 0), (3, 1, 0), (3, 0, 1)]
    outbox.close()


def test_out_of_order_acks_persist_and_the_cursor_catches_up(tmp_path):
    outbox = _open(tmp_path, targets=("mqtt", "birdweather"))
    seqs = [outbox.put({"n": i}) for i in range(5)]
    for seq in (seqs[1], seqs[3]):
        assert outbox.ack(seq, target="mqtt")
    assert _seqs(outbox, "mqtt") == [seqs[0], seqs[2], seqs[4]]
    outbox.close()

    outbox = _open(tmp_path, targets=("mqtt", "birdweather"))
    assert _seqs(outbox, "mqtt") == [seqs[0], seqs[2], seqs[4]]  # the out-of-order acks were kept
    assert _seqs(outbox, "mqtt")[0] == outbox.pending(1, after=0, target="mqtt")[0][0]
    for seq in (seqs[0], seqs[2]):
        outbox.ack(seq, target="mqtt")
    assert _seqs(outbox, "mqtt") == [seqs[4]]
    with sqlite3.connect(tmp_path / "outbox.sqlite") as conn:  # the cursor moved past the contiguous acks
        assert conn.execute("SELECT cursor FROM targets WHERE name = 'mqtt'").fetchone()[0] == seqs[3]
        assert conn.execute("SELECT COUNT(*) FROM target_acks").fetchone()[0] == 0
    outbox.close()


def test_a_refused_row_is_kept_for_inspection_and_blocks_nobody(tmp_path):
    outbox = _open(tmp_path, targets=("mqtt", "webhook:a"))
    seqs = [outbox.put({"n": i}) for i in range(3)]
    assert outbox.refuse(seqs[0], "HTTP 400: bad payload", target="webhook:a")
    assert _seqs(outbox, "webhook:a") == seqs[1:]
    assert outbox.refused_rows("webhook:a") == [(seqs[0], "HTTP 400: bad payload", {"n": 0})]
    outbox.ack(seqs[0], target="mqtt")
    assert outbox.backlog() == 2  # done for both (one refused): deleted, the copy stays in `refused`
    outbox.close()
    outbox = _open(tmp_path, targets=("mqtt", "webhook:a"))
    assert outbox.target_counters("webhook:a").refused == 1
    assert outbox.refused_rows("webhook:a")[0][2] == {"n": 0}
    outbox.close()


def test_bounds_count_drops_per_target_that_had_not_had_the_row(tmp_path):
    outbox = _open(tmp_path, targets=("mqtt", "birdweather"), max_rows=3)
    first = outbox.put({"n": 0})
    outbox.ack(first, target="mqtt")
    for i in range(1, 5):
        outbox.put({"n": i})
    assert outbox.dropped() == 2
    assert outbox.target_counters("mqtt").dropped == 1  # it had row 0 already
    assert outbox.target_counters("birdweather").dropped == 2
    assert [p["n"] for _, p in outbox.pending(10, target="birdweather")] == [2, 3, 4]
    outbox.close()
    assert _open(tmp_path, targets=("mqtt", "birdweather"), max_rows=3).target_counters("birdweather").dropped == 2


def test_a_new_target_starts_with_the_next_detection_and_a_removed_one_holds_nothing_back(tmp_path):
    outbox = _open(tmp_path, targets=("mqtt",))
    old = [outbox.put({"n": i}) for i in range(2)]
    outbox.close()
    outbox = _open(tmp_path, targets=("mqtt", "birdweather"))
    new = outbox.put({"n": 2})
    assert _seqs(outbox, "birdweather") == [new] and _seqs(outbox, "mqtt") == [*old, new]
    outbox.ack(new, target="birdweather")
    outbox.close()
    outbox = _open(tmp_path, targets=("birdweather",))  # mqtt taken out: the rows only it wanted go
    assert outbox.backlog() == 0
    with pytest.raises(ValueError, match="no target 'mqtt'"):
        outbox.pending(1, target="mqtt")
    outbox.close()


def test_without_targets_rows_are_only_kept(tmp_path):
    outbox = _open(tmp_path, targets=())
    outbox.put({"n": 0})
    outbox.close()
    assert _open(tmp_path, targets=()).backlog() == 1


def test_a_version_1_file_migrates_with_its_rows_waiting_for_the_broker(tmp_path):
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as conn:  # what schema version 1 wrote
        conn.executescript("""
            CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO counters VALUES ('dropped', 4), ('highest_id', 9);
            INSERT INTO outbox VALUES (7, 1e9, '{"n": 7}'), (8, 1e9, '{"n": 8}');
            PRAGMA user_version = 1;
        """)
    outbox = Outbox(OutboxConfig(path=str(path), max_age_days=1e6), targets=("mqtt", "birdweather"))
    assert _seqs(outbox, "mqtt") == [7, 8] and _seqs(outbox, "birdweather") == []
    assert outbox.dropped() == 4 and outbox.highest_id == 9
    outbox.ack(7, target="mqtt")
    assert outbox.backlog() == 1 and outbox.put({"n": 9}) == 9
    outbox.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
