"""Deleting a clip that is already gone (never written, its day directory never made, or deleted by another thread
a moment before) logs nothing and still clears the row's clip; the detection stays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from clip_fixtures import Station

from daemon.clips.directory import ClipDirectory
from daemon.store import queries
from daemon.store.schema import open_store


def test_a_clip_never_written_in_a_day_never_made_is_forgotten_quietly(tmp_path: Path, caplog):
    station = Station(tmp_path, np.random.default_rng(3), seconds=20)
    caplog.set_level(logging.WARNING)
    row_id, written = station.detect(10)  # its window left the ring long ago: no clip, no file, no day directory
    assert not written and station.recorder.counters.missed_audio == 1
    assert list(Path(station.config.dir).iterdir()) == []
    assert [r.getMessage() for r in caplog.records if r.name == "daemon.clips.directory"] == []
    row = queries.by_id(open_store(station.store.path, read_only=True), row_id)
    assert row is not None and (row["clip"], row["spectrogram"], row["clip_bytes"]) == (None, None, 0)


def test_a_day_another_thread_empties_or_fills_meanwhile_is_left_quietly(tmp_path: Path, caplog, monkeypatch):
    """Retention (sink thread) and eviction or a failed clip (clip worker) delete in one day at once: here the other
    thread's step is played at the one moment it hurts, between this unlink and the look into the day."""
    caplog.set_level(logging.WARNING)
    directory = ClipDirectory(tmp_path)
    look = Path.iterdir
    for day, other_thread in (("emptied", _remove_the_day), ("filled", _write_into_the_day)):
        (tmp_path / day).mkdir()
        (tmp_path / day / "c.flac").write_bytes(b"x")
        monkeypatch.setattr(Path, "iterdir", lambda path, step=other_thread: step(path, look))
        directory.delete([f"{day}/c.flac", f"{day}/c.png"])
        monkeypatch.setattr(Path, "iterdir", look)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["filled", "filled/new.flac"]
    assert [r.getMessage() for r in caplog.records if r.name == "daemon.clips.directory"] == []


def _remove_the_day(day: Path, look: Callable[[Path], Iterator[Path]]) -> Iterator[Path]:
    day.rmdir()  # the other thread deleted the day's last file and the day
    return look(day)


def _write_into_the_day(day: Path, look: Callable[[Path], Iterator[Path]]) -> Iterator[Path]:
    listing = list(look(day))
    (day / "new.flac").write_bytes(b"x")  # the clip worker wrote the next clip of that day
    return iter(listing)
