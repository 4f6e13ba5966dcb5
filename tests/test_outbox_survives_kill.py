"""A process SIGKILLed while putting loses nothing it had confirmed, and leaves a sound file."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from daemon.config import OutboxConfig
from daemon.sinks.outbox import Outbox

CONFIRMED_BEFORE_KILL = 60

_CHILD = textwrap.dedent("""
    import sys
    from daemon.config import OutboxConfig
    from daemon.sinks.outbox import Outbox
    outbox = Outbox(OutboxConfig(path=sys.argv[1]))
    i = 0
    while True:
        seq = outbox.put({"detection_id": f"d{i}", "index": i})
        if i % 3 == 0:
            outbox.ack(seq - 1)  # acks interleaved with puts, as the MQTT thread does
        print(seq, i, flush=True)
        i += 1
""")


def test_sigkill_mid_stream_loses_no_confirmed_row(tmp_path):
    path = tmp_path / "outbox.sqlite"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parents[1])
    confirmed = {}
    acked = set()
    for _ in range(CONFIRMED_BEFORE_KILL):
        seq, index = map(int, child.stdout.readline().split())
        confirmed[seq] = index
        if index % 3 == 0:
            acked.add(seq - 1)
    if CONFIRMED_BEFORE_KILL % 3 == 0:  # the child may have put the next row and acked the last one read before
        acked.add(max(confirmed))        # the kill landed: that row may be gone, rightly
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdout.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    outbox = Outbox(OutboxConfig(path=str(path)))
    rows = dict(outbox.pending(10_000))
    for seq, index in confirmed.items():
        if seq not in acked:
            assert rows[seq] == {"detection_id": f"d{index}", "index": index}
    assert list(rows) == sorted(rows)
    assert outbox.put({"detection_id": "after"}) > max(confirmed)
    outbox.close()
