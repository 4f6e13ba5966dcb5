"""Replay output formats: submission rows, detections, Raven selections, Audacity labels, atomic writes."""

import os
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from daemon.atomic import AtomicWriter
from daemon.batch.formats import (
    FileScores,
    RavenTable,
    audacity_labels,
    detection_rows,
    raven_header,
    submission_header,
    submission_rows,
)
from daemon.model.loader import Species

SPECIES = [Species("amerob", "American Robin", "Turdus migratorius"), Species("norcar", "Northern, Cardinal")]


def result() -> FileScores:
    return FileScores(Path("/x/site_01.ogg"), np.array([0, 160000]), np.array([160000, 320000]),
                      np.array([[0.9, 0.2], [0.6, 0.7]], dtype=np.float32))


def test_submission_rows():
    assert submission_header(SPECIES) == "row_id,amerob,norcar\n"
    assert submission_rows(result()) == "site_01_5,0.9,0.2\nsite_01_10,0.6,0.7\n"


def test_detections_table_is_thresholded_and_quoted():
    rows = detection_rows(result(), SPECIES, 0.65).splitlines()
    assert rows == ["0.0,5.0,/x/site_01.ogg,amerob,American Robin,0.9000",
                    '5.0,10.0,/x/site_01.ogg,norcar,"Northern, Cardinal",0.7000']


def test_raven_selection_table_numbers_selections_across_files():
    table = RavenTable(0.5)
    first = table.rows(result(), SPECIES).splitlines()
    table.end_file()  # no such file: taken to end with its last window (10 s)
    second = table.rows(result(), SPECIES).splitlines()
    assert [line.split("\t")[0] for line in first + second] == ["1", "2", "3", "4", "5", "6"]
    fields = second[0].split("\t")
    assert fields[3] == "10.000" and fields[10] == "/x/site_01.ogg" and fields[11] == "0.000"


def test_raven_table_gets_raven_clock_times_when_the_recording_start_is_known():
    assert raven_header(True).rstrip("\n").split("\t")[-4:] == ["Begin Date", "Begin Clock Time", "End Date",
                                                                 "End Clock Time"]
    table = RavenTable(0.5, with_times=True)
    start = datetime(2024, 5, 1, 23, 59, 57, 250000, tzinfo=timezone(timedelta(hours=1)))
    timed = table.rows(replace(result(), recording_start=start), SPECIES).splitlines()
    untimed = table.rows(result(), SPECIES).splitlines()
    assert timed[0].split("\t")[-4:] == ["2024/05/01", "23:59:57.250", "2024/05/02", "00:00:02.250"]
    assert untimed[0].split("\t")[-4:] == ["", "", "", ""]
    assert len(timed[0].split("\t")) == len(raven_header(True).split("\t"))
    plain = RavenTable(0.5).rows(result(), SPECIES).splitlines()[0]
    assert len(plain.split("\t")) == len(raven_header(False).split("\t"))


def test_audacity_labels():
    assert audacity_labels(result(), SPECIES, 0.8) == "0.000\t5.000\tAmerican Robin (amerob) 0.900\n"


def test_atomic_writer_leaves_target_alone_until_commit(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    writer = AtomicWriter(target)
    writer.write("new\n")
    assert target.read_text() == "old\n"
    writer.discard()
    assert target.read_text() == "old\n" and len(list(tmp_path.iterdir())) == 1
    writer = AtomicWriter(target)
    writer.write("new\n")
    writer.commit()
    assert target.read_text() == "new\n"


def test_atomic_writer_gives_a_new_file_the_umask_mode_and_keeps_a_replaced_file_mode(tmp_path):
    old = os.umask(0o027)
    try:
        with AtomicWriter(tmp_path / "new.txt") as writer:
            writer.write("x\n")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # 0666 less the umask, not mkstemp's 0600
        (tmp_path / "kept.txt").write_text("old\n")
        (tmp_path / "kept.txt").chmod(0o604)
        with AtomicWriter(tmp_path / "kept.txt") as writer:
            writer.write("new\n")
        assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o604
    finally:
        os.umask(old)
