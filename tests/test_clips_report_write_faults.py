"""A clips directory that cannot be written: one event each way on the status topic per run of failures, as for
the outbox, the store and the archive; the detections' rows stay, their clip names are cleared."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import numpy as np
import pytest
from clip_fixtures import Station, detection_epoch

from daemon.store import queries
from daemon.store.schema import open_store
from daemon.store.writer import local_date_time
from daemon.write_faults import RETRY_INITIAL_S


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return Station(tmp_path, np.random.default_rng(4), keep_per_species_per_day=0)


def clip_rows(station: Station) -> list[bool]:
    conn = open_store(Path(station.store.path), read_only=True)
    return [bool(row["clip"]) for row in sorted(queries.recent(conn, 10), key=lambda row: row["id"])]


def test_an_unwritable_clips_directory_publishes_one_event_each_way(station: Station):
    day = Path(station.config.dir) / local_date_time(detection_epoch(0))[0]
    day.write_text("not a directory")  # where the day's clips go: every write fails
    assert station.detect(0) == (1, False)
    assert station.detect(1) == (2, False)  # within the back-off: not even tried
    counters = station.recorder.counters
    assert (counters.failed, counters.skipped_unwritable, counters.written) == (1, 1, 0)
    assert [kind for kind, _ in station.events] == ["clips_write_failed"]
    assert station.events[0][1] == station.recorder.error and station.recorder.error

    day.unlink()
    time.sleep(RETRY_INITIAL_S * 1.1)
    assert station.detect(2)[1] and station.detect(3)[1]
    assert [kind for kind, _ in station.events] == ["clips_write_failed", "clips_writable"]
    assert station.recorder.error == "" and counters.written == 2
    assert clip_rows(station) == [False, False, True, True]  # every row stays


def test_a_read_only_directory_is_one_event_however_many_clips_fail(station: Station, monkeypatch):
    def read_only(name: str, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system", name)  # names the clip: another text each time

    monkeypatch.setattr(station.recorder.directory, "write", read_only)
    assert not station.detect(0)[1]
    time.sleep(RETRY_INITIAL_S * 1.1)
    assert not station.detect(1)[1]
    assert station.recorder.counters.failed == 2
    assert [kind for kind, _ in station.events] == ["clips_write_failed"]
    monkeypatch.undo()
    time.sleep(RETRY_INITIAL_S * 2.2)  # the back-off doubled
    assert station.detect(2)[1]
    assert [kind for kind, _ in station.events] == ["clips_write_failed", "clips_writable"]
    assert clip_rows(station) == [False, False, True]
