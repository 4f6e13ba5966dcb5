"""The sink thread serves the window results queued together at once: every sink still sees each window and
detection in order, and the outbox commits their detections in one durable transaction (one fsync for the
windows of 8 sources that end together, not eight)."""

from __future__ import annotations

import queue
import sqlite3
from collections import Counter
from pathlib import Path

from conftest import detection_payload, detection_window

from daemon.config import OutboxConfig, StoreConfig
from daemon.pipeline.detection import Detection
from daemon.service.workers import END, GROUP_COMMIT_MAX, SinkWorker
from daemon.sinks.base import GroupCommitSink
from daemon.sinks.outbox import Outbox, OutboxSink
from daemon.sinks.recording import RecordingSink
from daemon.store.writer import DetectionStore


class Calls:
    """A group-commit sink that records what it is called with, and a plain sink after it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def hold(self, detection: Detection) -> None:
        self.seen.append(f"hold {detection.end}")

    def commit(self) -> None:
        self.seen.append("commit")

    def put(self, detection: Detection) -> None:
        self.seen.append(f"put {detection.end}")

    def close(self) -> None:
        pass


class Plain:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def put(self, detection: Detection) -> None:
        self.seen.append(f"plain {detection.end}")

    def close(self) -> None:
        pass


def serve(items: list, sinks: list, window_sinks: list) -> None:
    """Queue ``items`` and END, then run the sink thread over them to the end."""
    inbox: queue.Queue = queue.Queue()
    for item in [*items, END]:
        inbox.put(item)
    worker = SinkWorker(inbox, sinks, window_sinks, Counter())
    worker.start()
    worker.join(10)
    assert not worker.is_alive()


def test_windows_queued_together_share_one_commit_in_order():
    calls = Calls()
    assert isinstance(calls, GroupCommitSink)
    serve([detection_window(i) for i in range(8)], [calls, Plain(calls.seen)], [])
    ends = [detection_payload(i)["end"] for i in range(8)]
    assert calls.seen == [line for end in ends for line in (f"hold {end}", f"plain {end}")] + ["commit"]


def test_a_batch_is_bounded():
    calls = Calls()
    serve([detection_window(i) for i in range(GROUP_COMMIT_MAX + 3)], [calls], [])
    assert calls.seen.count("commit") == 2 and calls.seen[GROUP_COMMIT_MAX] == "commit"


def test_the_outbox_and_the_store_agree_on_ids_through_a_group_commit(tmp_path: Path):
    outbox = Outbox(OutboxConfig(path=str(tmp_path / "outbox.sqlite")))
    recording = RecordingSink(DetectionStore(StoreConfig(path=str(tmp_path / "store.sqlite"))), clips=None)
    sink = OutboxSink(outbox, extra_fields=recording.payload_fields)
    serve([detection_window(i) for i in range(5)], [sink, recording], [recording, sink])
    published = [(p["id"], p["detection_id"]) for _, p in outbox.pending(10)]
    assert published == [(i + 1, detection_payload(i)["detection_id"]) for i in range(5)]
    stored = sqlite3.connect(tmp_path / "store.sqlite").execute(
        "SELECT id, detection_id FROM detections ORDER BY id").fetchall()
    assert stored == published
    recording.close()
    outbox.close()


def test_held_payloads_reach_the_file_at_commit_and_the_publisher_only_then(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(OutboxConfig(path=str(path)))
    reader = sqlite3.connect(path)
    for index in range(3):
        outbox.hold({**detection_payload(index), "id": index + 1})
    assert reader.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
    # Published before the commit, a power cut before it would leave ids 1-3 out of the file's highest_id and
    # a restarted daemon would give them to other detections (the power-cut test's id reuse).
    assert outbox.pending(10) == []
    restarted = Outbox(OutboxConfig(path=str(path)), targets=())  # what a daemon started after a kill would see
    assert restarted.highest_id == 0
    restarted.close()
    outbox.commit()
    assert reader.execute("SELECT seq FROM outbox ORDER BY seq").fetchall() == [(1,), (2,), (3,)]
    assert [p["detection_id"] for _, p in outbox.pending(10)] == [detection_payload(i)["detection_id"]
                                                                  for i in range(3)]
    assert outbox.highest_id == 3
    assert outbox.held() == (0, 0)
    outbox.close()
