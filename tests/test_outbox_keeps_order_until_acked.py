"""The outbox hands rows out in seq order, keeps them until acked, and keeps all of it across a reopen."""

import sqlite3

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox


def test_rows_come_back_in_order_until_acked(tmp_path, make_detection):
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    payloads = [make_detection(i) for i in range(5)]
    seqs = [outbox.put(p) for p in payloads]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert outbox.pending(10) == list(zip(seqs, payloads, strict=True))
    assert outbox.pending(2, after=seqs[1]) == list(zip(seqs[2:4], payloads[2:4], strict=True))
    assert outbox.ack(seqs[0]) is True
    assert outbox.ack(seqs[0]) is False
    assert outbox.backlog() == 4
    assert outbox.last_seq == seqs[-1]
    outbox.close()


def test_reopen_keeps_rows_and_never_reuses_a_seq(tmp_path, make_detection):
    config = OutboxConfig(path=str(tmp_path / "state" / "outbox.sqlite"))  # parent made on open
    outbox = Outbox(config)
    seqs = [outbox.put(make_detection(i)) for i in range(3)]
    outbox.ack(seqs[1])
    outbox.close()

    outbox = Outbox(config)
    assert [seq for seq, _ in outbox.pending(10)] == [seqs[0], seqs[2]]
    assert outbox.pending(10)[1][1] == make_detection(2)
    for seq in (seqs[0], seqs[2]):
        outbox.ack(seq)
    outbox.close()

    outbox = Outbox(config)  # empty now: the next seq must still be above every seq handed out
    assert outbox.backlog() == 0
    assert outbox.put(make_detection(9)) > seqs[-1]
    outbox.close()


def test_file_is_in_wal_mode(tmp_path):
    path = tmp_path / "outbox.sqlite"
    Outbox(OutboxConfig(path=str(path))).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
