"""After a crash the clips directory and the store agree again: no file the store does not know, no row naming
a clip that never landed whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from clip_fixtures import Station
from conftest import detection_payload

from daemon.clips.recorder import ClipRecorder
from daemon.pipeline.detection import Detection
from daemon.store import queries
from daemon.store.schema import open_store
from daemon.store.writer import ClipFiles


def test_reconcile_deletes_orphans_and_forgets_unfinished_clips(tmp_path: Path):
    station = Station(tmp_path, np.random.default_rng(5), keep_per_species_per_day=0)
    for i in range(3):
        station.detect(i)
    root = Path(station.config.dir)
    clip_of = {row.row_id: row.files for row in station.store.all_clips()}
    (root / clip_of[2].clip).write_bytes(b"truncated")  # a power cut before the data reached the card
    day = clip_of[1].clip.split("/")[0]
    (root / day / f".{Path(clip_of[1].clip).name}.tmp").write_bytes(b"half")  # killed while writing
    (root / day / "grtit1_000000_unknown.flac").write_bytes(b"orphan")  # written, row never committed
    (root / "2001-01-01").mkdir()
    (root / "2001-01-01" / "old.png").write_bytes(b"orphan")
    # stored with its clip planned, killed before the clip worker wrote it
    station.store.add(Detection(**detection_payload(3)), ClipFiles(f"{day}/planned.flac", f"{day}/planned.png"))

    recorder = ClipRecorder(station.config, station.store, station.ring)
    assert recorder.reconcile() == 5  # the tmp file, two orphans, and the truncated clip's two files
    conn = open_store(tmp_path / "store.sqlite", read_only=True)
    rows = {row["id"]: row for row in queries.recent(conn, 10)}
    assert [rows[i]["clip"] is not None for i in (1, 2, 3, 4)] == [True, False, True, False]
    assert set(station.files_on_disk()) == {*clip_of[1].names, *clip_of[3].names}
    assert recorder.policy.total_bytes == sum(station.files_on_disk().values())
    assert not (root / "2001-01-01").exists()
