"""Clips: written from the ring with their margin, and kept within the size cap, the age, the per-species
ranking, the never-keep list and the free-space floor; the detection rows always stay."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from clip_fixtures import WINDOW, DiskUsage, Station, detection_epoch
from conftest import detection_payload
from PIL import Image

from daemon.constants import SAMPLE_RATE
from daemon.pipeline.detection import Detection
from daemon.store import queries
from daemon.store.schema import open_store

MB = 1024 * 1024


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12)


def test_a_clip_holds_the_window_and_its_margins_and_a_spectrogram(tmp_path: Path, rng):
    station = Station(tmp_path, rng, margin_s=1.0)
    row_id, written = station.detect(3)
    assert written
    row = queries.by_id(open_store(tmp_path / "store.sqlite", read_only=True), row_id)
    audio, rate = sf.read(Path(station.config.dir) / row["clip"], dtype="float32")
    assert rate == SAMPLE_RATE and audio.size == WINDOW + 2 * SAMPLE_RATE
    expected = station.ring.copy_past(3 * WINDOW - SAMPLE_RATE, 4 * WINDOW + SAMPLE_RATE)[0][1]
    np.testing.assert_allclose(audio, expected, atol=1 / 2**15)  # 16-bit FLAC
    image = Image.open(Path(station.config.dir) / row["spectrogram"])
    assert image.format == "PNG" and image.width > 700  # one column per 10-ms frame, 7 s
    assert row["clip_bytes"] == sum(station.files_on_disk().values())


def test_opus_clips_are_ogg_files(tmp_path: Path, rng):
    station = Station(tmp_path, rng, format="ogg")
    station.detect(1)
    (clip,) = [name for name in station.files_on_disk() if name.endswith(".ogg")]
    info = sf.info(io.BytesIO((Path(station.config.dir) / clip).read_bytes()))
    assert (info.format, info.subtype) == ("OGG", "OPUS")


def test_the_size_cap_holds_after_every_clip_and_deletes_the_oldest_first(tmp_path: Path, rng):
    station = Station(tmp_path, rng, max_total_mb=1.0, keep_per_species_per_day=0)
    for i in range(20):
        assert station.detect(i)[1]
        assert sum(station.files_on_disk().values()) <= 1.0 * MB
    conn = open_store(tmp_path / "store.sqlite", read_only=True)
    rows = sorted(queries.recent(conn, 100), key=lambda row: row["id"])
    assert len(rows) == 20  # every detection row stays
    with_clip = [row["id"] for row in rows if row["clip"]]
    assert with_clip == list(range(21 - len(with_clip), 21)) and len(with_clip) < 20
    assert station.recorder.counters.deleted_cap == 20 - len(with_clip)
    assert station.recorder.policy.total_bytes == sum(station.files_on_disk().values())


def test_clips_older_than_max_age_are_deleted_and_their_rows_stay(tmp_path: Path, rng):
    station = Station(tmp_path, rng, max_age_days=1.0, keep_per_species_per_day=0)
    station.detect(0)
    station.detect(1)
    station.now = detection_epoch(1) + 86_400.0 - 1.0  # clip 0 is now more than a day old, clip 1 not
    station.detect(2)
    conn = open_store(tmp_path / "store.sqlite", read_only=True)
    assert [bool(row["clip"]) for row in sorted(queries.recent(conn, 10), key=lambda r: r["id"])] == [
        False, True, True]
    assert station.recorder.counters.deleted_age == 1
    assert len(station.files_on_disk()) == 4


def test_only_the_n_most_confident_clips_per_species_and_day_are_kept(tmp_path: Path, rng):
    station = Station(tmp_path, rng, keep_per_species_per_day=2)
    confidences = [0.5, 0.6, 0.4, 0.9, 0.55]
    results = [station.detect(i, confidence=c)[1] for i, c in enumerate(confidences)]
    station.detect(5, species="other1", confidence=0.1)  # another species has its own quota
    assert results == [True, True, False, True, False]  # 0.4 and 0.55 never beat the two kept
    conn = open_store(tmp_path / "store.sqlite", read_only=True)
    kept = sorted(row["confidence"] for row in queries.recent(conn, 10) if row["clip"])
    assert kept == [0.1, 0.6, 0.9]
    assert station.recorder.counters.skipped_rank == 2 and station.recorder.counters.deleted_rank == 1
    assert len(station.files_on_disk()) == 6


def test_never_species_get_no_clip_but_keep_their_row(tmp_path: Path, rng):
    station = Station(tmp_path, rng, never_species=["human1"])
    row_id, written = station.detect(0, species="human1")
    assert not written and station.recorder.counters.skipped_species == 1
    assert queries.by_id(open_store(tmp_path / "store.sqlite", read_only=True), row_id)["clip"] is None
    assert station.files_on_disk() == {}


def test_below_the_free_space_floor_no_clip_is_written_and_nothing_fails(tmp_path: Path, rng):
    station = Station(tmp_path, rng, min_free_mb=100.0, keep_per_species_per_day=0)
    station.free = DiskUsage(10**9, 10**9 - 50 * MB, 50 * MB)
    assert station.detect(0) == (1, False)
    station.free = DiskUsage(10**9, 0, 100 * MB + 100_000)  # room for the floor, not for a clip on top of it
    assert station.detect(1) == (2, False)
    assert station.recorder.counters.skipped_disk == 2
    station.free = DiskUsage(10**9, 0, 10**9)
    assert station.detect(2) == (3, True)
    conn = open_store(tmp_path / "store.sqlite", read_only=True)
    assert [bool(row["clip"]) for row in sorted(queries.recent(conn, 10), key=lambda r: r["id"])] == [
        False, False, True]


def test_a_window_that_left_the_ring_gets_no_clip(tmp_path: Path, rng):
    station = Station(tmp_path, rng, seconds=30)
    station.ring.write(np.zeros(40 * SAMPLE_RATE, dtype=np.float32))  # the first 30 s are overwritten
    assert station.detect(0) == (1, False)
    assert station.recorder.counters.missed_audio == 1 and station.files_on_disk() == {}


def test_the_clip_total_stays_exact_when_retention_releases_clips_while_one_is_written(tmp_path: Path, rng,
                                                                                      monkeypatch):
    """The sink thread's retention can release clips between the clip worker's record of a clip and the
    end of its write: the total the cap is checked against still equals the files on disk."""
    station = Station(tmp_path, rng, max_rows=2, keep_per_species_per_day=0)
    station.detect(0)
    station.detect(1)
    record_clip = station.store.record_clip

    def retention_meanwhile(row_id: int, nbytes: int) -> bool:
        recorded = record_clip(row_id, nbytes)
        _, released = station.store.add(Detection(**detection_payload(9)))  # retention: detection 1's row, clip
        station.recorder.released(released)
        return recorded

    monkeypatch.setattr(station.store, "record_clip", retention_meanwhile)
    assert station.detect(2)[1]
    assert len(station.files_on_disk()) == 2  # clip and spectrogram of detection 2 only
    assert station.recorder.policy.total_bytes == sum(station.files_on_disk().values())
