"""Power cuts in a loop: the daemon SIGKILLed at random instants loses no committed detection.

Each cycle runs ``birdd run`` on a looped replay of a soundscape (threshold 0: every species of every
window is a detection, so the outbox is written, acknowledged and checkpointed all the time) and
SIGKILLs it at a random instant (a quarter during start-up, the rest while detections are written);
then ``PRAGMA integrity_check`` runs on the outbox as the kill left it, and the rows waiting in it are
recorded. Every cycle replays the file under its own name (a symlink), so each detection's ``source``
says which cycle made it. The outbox's AUTOINCREMENT counter is the number of detections ever
committed; at the end a last daemon drains the outbox, and a subscriber must have received exactly
that many distinct detections of the killed cycles, every row that waited in the outbox at a kill
among them, each source's detections in stream order. Every cycle also has a detection store of its own (beside
its config), so only the outbox's record of the highest id it committed keeps a later cycle from giving a
published id to another detection: no id may arrive with two detections.

``BIRDD_POWERCUT_CYCLES`` sets the number of cycles (10 in the suite; ``bench/robustness.py powercut`` runs 200).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from daemon_process import Daemon, write_config

pytestmark = pytest.mark.integration

CYCLES = int(os.environ.get("BIRDD_POWERCUT_CYCLES", "10"))
STARTUP_KILLS = 0.25
"""share of the cycles killed during start-up (uniform within STARTUP_KILL_S of the process start)"""
STARTUP_KILL_S = 1.0
RUNNING_KILL_S = 1.5
"""the other cycles are killed uniformly within this long after "birdd running": detections are being written"""
RESULTS: dict[str, int] = {}
"""the last run's figures, for bench/robustness.py"""


def _outbox_state(path: Path) -> tuple[str, int, list[tuple[int, dict]]]:
    """(integrity_check result, highest seq ever committed, waiting rows) of the outbox as the kill left it."""
    if not path.exists():
        return "ok", 0, []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        rows = conn.execute("SELECT seq, payload FROM outbox ORDER BY seq").fetchall()
    except sqlite3.OperationalError as exc:  # killed before the schema was first committed
        if "no such table" not in str(exc):
            raise
        return "ok", 0, []
    finally:
        conn.close()
    return integrity, row[0] if row else 0, [(seq, json.loads(text)) for seq, text in rows]


def test_sigkill_at_random_instants_loses_no_committed_detection(tmp_path, mosquitto, subscribe, trained_model,
                                                                 synthetic_corpus, rng):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").iterdir())[0]
    outbox = tmp_path / "outbox.sqlite"
    sub = subscribe(mosquitto, "birdd/pc/detections")

    def config(name: str) -> Path:
        audio = tmp_path / f"{name}{soundscape.suffix}"
        audio.symlink_to(soundscape)
        return write_config(tmp_path / f"{name}.toml", {
            "station": {"name": "pc"},
            "audio": {"source": "file", "files": [str(audio)], "realtime": False, "loop": True},
            "model": {"path": str(trained_model)},
            "detection": {"threshold": 0.0},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
                     "ha_discovery": False},
            "outbox": {"path": str(outbox)},
        })

    committed = 0
    waiting: dict[str, dict] = {}  # detection_id -> payload, rows found in the outbox after some kill
    integrity_failures = kills_while_writing = 0
    for cycle in range(CYCLES):
        daemon = Daemon(config(f"cycle{cycle:03d}"), tmp_path / f"cycle{cycle:03d}.log")
        if rng.uniform() < STARTUP_KILLS:
            time.sleep(rng.uniform(0, STARTUP_KILL_S))
        else:
            daemon.wait_for_log("birdd running", timeout=60)
            time.sleep(rng.uniform(0, RUNNING_KILL_S))
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        daemon.close()
        integrity, highest, rows = _outbox_state(outbox)
        integrity_failures += integrity != "ok"
        kills_while_writing += highest > committed
        committed = max(committed, highest)
        waiting.update((payload["detection_id"], payload) for _, payload in rows)

    final = Daemon(config("final"), tmp_path / "final.log")
    try:
        received = sub.wait_for(
            lambda ms: len({m.json()["detection_id"] for m in ms if "final" not in m.json()["source"]}) >= committed,
            timeout=60)
    finally:
        final.signal(signal.SIGTERM)
        final.wait(10)
        final.close()
    integrity_failures += _outbox_state(outbox)[0] != "ok"

    by_id = {}
    order_violations = 0
    detections_of_id: dict[int, set[str]] = {}
    for message in received:
        detections_of_id.setdefault(message.json()["id"], set()).add(message.json()["detection_id"])
    id_reuses = sum(len(detections) - 1 for detections in detections_of_id.values())
    last_end: dict[str, str] = {}
    for message in received:
        payload = message.json()
        if "final" in payload["source"] or payload["detection_id"] in by_id:
            continue  # the drain run's own detections; an at-least-once duplicate counts where it first arrived
        by_id[payload["detection_id"]] = payload
        order_violations += payload["end"] < last_end.get(payload["source"], "")
        last_end[payload["source"]] = payload["end"]
    lost = len(set(waiting) - set(by_id)) + max(0, committed - len(by_id))
    RESULTS.update(cycles=CYCLES, committed=committed, received=len(by_id), lost=lost,
                   kills_while_writing=kills_while_writing, waiting_at_a_kill=len(waiting),
                   integrity_failures=integrity_failures, order_violations=order_violations, id_reuses=id_reuses)
    print(f"\npower cuts: {RESULTS}")
    assert committed > 0 and kills_while_writing > 0
    assert lost == 0 and len(by_id) == committed, RESULTS
    assert integrity_failures == 0 and order_violations == 0 and id_reuses == 0, RESULTS
