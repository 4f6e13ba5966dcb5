"""Replay hands each segment of a long recording to the writers as it comes: every format equals the unsplit
run's, an interrupted run resumes inside a recording, Raven lays files end to end by their length, and
Audacity keeps one label file per recording even when two share a name."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from replay_fixtures import stopping_after

from daemon.batch.journal import journal_dir
from daemon.batch.replay import pool_runner
from daemon.batch.run import ReplayOptions, first_error_per_file, run_replay
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import load_model

LENGTHS_S = {"long.flac": 95.3, "clip63.wav": 63.0, "tiny.wav": 3.0}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(11)
    for name, seconds in LENGTHS_S.items():
        sf.write(folder / name, (rng.standard_normal(round(seconds * SAMPLE_RATE)) * 0.2).astype(np.float32),
                 SAMPLE_RATE, subtype="PCM_24" if name.endswith(".flac") else "FLOAT")
    return [folder / name for name in LENGTHS_S]


def output_of(fmt, model, files, target, segment_seconds, runner=None, resume=False):
    options = ReplayOptions(fmt, 0.0, 5, segment_seconds)
    run_replay(model, files, target, options, runner or pool_runner(model, 1), resume=resume)
    if fmt == "audacity":
        return {path.relative_to(target).as_posix(): path.read_bytes() for path in sorted(target.rglob("*.txt"))}
    return target.read_bytes()


@pytest.mark.parametrize(("fmt", "suffix"), [("submission", ".csv"), ("detections", ".parquet"), ("raven", ".txt"),
                                             ("audacity", "")])
def test_every_format_written_segment_by_segment_equals_the_unsplit_run(trained_model, recordings, tmp_path, fmt,
                                                                       suffix):
    model = load_model(trained_model)
    split = output_of(fmt, model, recordings, tmp_path / f"split{suffix}", 20)  # the long file in 5 segments
    whole = output_of(fmt, model, recordings, tmp_path / f"whole{suffix}", 600)
    assert split == whole and len(split) > 0


def test_an_interrupted_run_resumes_inside_a_long_recording(trained_model, recordings, tmp_path):
    model = load_model(trained_model)
    full = output_of("detections", model, recordings, tmp_path / "full.csv", 20)
    out = tmp_path / "resumed.csv"
    with pytest.raises(KeyboardInterrupt):  # 20-s tasks: the long file's 5 segments first
        output_of("detections", model, recordings, out, 20, stopping_after(pool_runner(model, 1), 2), resume=True)
    assert len(list(journal_dir(out).glob("*.npz"))) == 2 and not out.exists()
    assert output_of("detections", model, recordings, out, 20, resume=True) == full
    assert not journal_dir(out).exists()


def test_raven_lays_files_end_to_end_by_their_audio_length(trained_model, recordings, tmp_path):
    model = load_model(trained_model)
    lines = output_of("raven", model, recordings, tmp_path / "raven.txt", 20).decode().splitlines()
    header, rows = lines[0].split("\t"), [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True))
                                          for line in lines[1:]]
    assert "Begin Time (s)" in header
    offset = 0.0
    for name, seconds in LENGTHS_S.items():
        mine = [row for row in rows if row["Begin Path"].endswith(name)]
        assert mine, name
        for row in mine:
            begin, end, in_file = (float(row[key]) for key in ("Begin Time (s)", "End Time (s)", "File Offset (s)"))
            assert begin == pytest.approx(offset + in_file, abs=1e-3)
            assert offset <= begin < end <= offset + seconds + 1e-3  # a trailing window ends with its file
        offset += seconds


def test_audacity_keeps_a_label_file_per_recording_of_a_shared_name(trained_model, recordings, tmp_path):
    sites = []
    for site, source in (("site1", recordings[1]), ("site2", recordings[2])):
        (tmp_path / site).mkdir()
        sites.append(tmp_path / site / "20240501_053000.wav")
        sites[-1].symlink_to(source)
    labels = output_of("audacity", load_model(trained_model), sites, tmp_path / "labels", 600)
    assert set(labels) == {"site1/20240501_053000.txt", "site2/20240501_053000.txt"}
    assert labels["site1/20240501_053000.txt"] != labels["site2/20240501_053000.txt"]


def test_a_submission_of_recordings_sharing_a_name_is_warned_about(trained_model, recordings, tmp_path, caplog):
    sites = []
    for site in ("a", "b"):
        (tmp_path / site).mkdir()
        sites.append(tmp_path / site / "tiny.wav")
        sites[-1].symlink_to(recordings[2])
    with caplog.at_level(logging.WARNING):
        output_of("submission", load_model(trained_model), sites, tmp_path / "sub.csv", 600)
    assert "1 recording(s) share a file stem" in caplog.text and str(sites[1]) in caplog.text


def test_parquet_gives_a_recording_without_a_known_start_a_null_start(trained_model, recordings, tmp_path):
    dated = tmp_path / "20240501_053000.wav"
    dated.symlink_to(recordings[2])
    output_of("submission", load_model(trained_model), [dated, recordings[2]], tmp_path / "sub.parquet", 600)
    assert pq.read_table(tmp_path / "sub.parquet").column("recording_start").to_pylist() == [
        "2024-05-01T05:30:00+00:00", None]


def test_audacity_labels_of_relative_paths_stay_in_the_output_folder(trained_model, recordings, tmp_path,
                                                                     monkeypatch, caplog):
    for folder, name, source in (("a", "x.wav", recordings[2]), ("b", "y.wav", recordings[2]),
                                 ("b", "y.flac", recordings[0])):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).symlink_to(source)
    monkeypatch.chdir(tmp_path / "b")
    files = [Path("../a/x.wav"), Path("y.wav"), Path("y.flac")]
    with caplog.at_level(logging.WARNING):
        labels = output_of("audacity", load_model(trained_model), files, Path("labels"), 600)
    assert set(labels) == {"a/x.txt", "b/y.txt"} and not (tmp_path / "a" / "x.txt").exists()
    assert "share their Audacity label file" in caplog.text  # y.wav and y.flac in one folder


def test_a_recording_that_failed_in_two_segments_is_listed_once():
    files = [Path("/a/x: y.flac"), Path("/a/z.flac")]
    messages = ["/a/x: y.flac: cannot decode audio (bad frame)", "/a/z.flac: no such file",
                "/a/x: y.flac: cannot decode audio (short read)", "/a/z.flac: no such file", "something else"]
    assert first_error_per_file(messages, files) == [messages[0], messages[1], messages[4]]
