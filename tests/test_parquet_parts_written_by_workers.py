"""--parts: the workers write Parquet parts whose rows, read in name order, are the gathered table's; an
interrupted run resumes from its parts; a LocalCluster's workers write the same parts."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from replay_fixtures import run_birdd, run_birdd_killed_after, stopping_after, write_recordings

from daemon.audio.files import find_audio_files
from daemon.batch.parts import RUN_FILE
from daemon.batch.replay import plan_tasks, pool_runner
from daemon.batch.run import ReplayOptions, replay_into_parts, run_replay
from daemon.errors import BirddError, ResumeError
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid

OPTIONS = ReplayOptions("detections", 0.2, 5, 60)  # tasks of 60 s: three 20-s files, or one segment of the long one


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = write_recordings(tmp_path_factory.mktemp("recordings"), 12, 20, seed=11)  # AudioMoth names: times
    write_recordings(folder / "long", 1, 150, seed=12)  # cut into 3 segments
    (folder / "broken.wav").write_bytes(b"RIFF, but not audio")
    return folder


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(trained_model)


def gathered(model, files, options, path):
    summary = run_replay(model, files, path, options, pool_runner(model, 1))
    return pq.read_table(path), summary


@pytest.mark.parametrize("fmt", ["submission", "detections"])
def test_parts_hold_the_rows_of_the_gathered_table(model, recordings, tmp_path, fmt):
    files, options = find_audio_files([recordings]), replace(OPTIONS, fmt=fmt)
    table, expected = gathered(model, files, options, tmp_path / "all.parquet")
    summary = replay_into_parts(model, files, tmp_path / "parts", options, pool_runner(model, 2))
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    assert len(parts) == len(plan_tasks(files, WindowGrid(), options.segment_seconds)) > 1
    assert pq.read_table(tmp_path / "parts").equals(table)
    assert table.num_rows > 0 and (fmt == "submission" or "start_time" in table.column_names)
    assert summary == expected and len(summary.failed) == 1 and "broken.wav" in summary.failed[0]


def test_an_interrupted_parts_run_resumes_from_its_parts(model, recordings, tmp_path):
    files = find_audio_files([recordings])
    table, expected = gathered(model, files, OPTIONS, tmp_path / "all.parquet")
    out = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        replay_into_parts(model, files, out, OPTIONS, stopping_after(pool_runner(model, 1), 5), resume=True)
    written = {part: part.stat().st_mtime_ns for part in out.glob("part-*.parquet")}
    tasks = len(plan_tasks(files, WindowGrid(), OPTIONS.segment_seconds))
    assert 5 <= len(written) < tasks
    summary = replay_into_parts(model, files, out, OPTIONS, pool_runner(model, 1), resume=True)
    assert {part: part.stat().st_mtime_ns for part in written} == written  # kept, not scored again
    assert pq.read_table(out).equals(table)
    assert summary == expected  # the broken file's error was in a part written before the interruption


def test_parts_refuse_another_run_and_are_replaced_without_resume(model, recordings, tmp_path):
    files, out = find_audio_files([recordings])[:6], tmp_path / "parts"
    replay_into_parts(model, files, out, OPTIONS, pool_runner(model, 1))
    with pytest.raises(ResumeError, match=r"min_conf 0\.2 -> 0\.5"):
        replay_into_parts(model, files, out, replace(OPTIONS, min_conf=0.5), pool_runner(model, 1), resume=True)
    replay_into_parts(model, files[:2], out, OPTIONS, pool_runner(model, 1))  # one task
    assert len(list(out.glob("part-*.parquet"))) == 1 and (out / RUN_FILE).is_file()
    with pytest.raises(BirddError, match="--format submission or detections, not raven"):
        replay_into_parts(model, files, out, replace(OPTIONS, fmt="raven"), pool_runner(model, 1))


@pytest.mark.integration
def test_birdd_replay_parts_on_the_command_line(trained_model, model, recordings, tmp_path):
    long = recordings / "long"
    table, _ = gathered(model, find_audio_files([long]), OPTIONS, tmp_path / "all.parquet")
    run_birdd("replay", long, "-m", trained_model, "-o", tmp_path / "parts", "--parts", "--format", "detections",
              "--min-conf", OPTIONS.min_conf, "--segment-minutes", 1, "-j", 2)
    assert len(list((tmp_path / "parts").glob("part-*.parquet"))) == 3
    assert pq.read_table(tmp_path / "parts").equals(table)


@pytest.mark.integration
def test_a_parts_run_killed_with_sigkill_resumes_to_the_same_rows(trained_model, model, tmp_path):
    recordings = write_recordings(tmp_path / "recordings", 40, 20, seed=13)
    table, _ = gathered(model, find_audio_files([recordings]), OPTIONS, tmp_path / "all.parquet")
    out = tmp_path / "parts"
    args = ("replay", recordings, "-m", trained_model, "-o", out, "--parts", "--format", "detections", "--min-conf",
            OPTIONS.min_conf, "--segment-minutes", 1, "-j", 1, "--resume")
    assert 4 <= run_birdd_killed_after(args, out, "part-*.parquet", 4) < 20
    run_birdd(*args)
    assert pq.read_table(out).equals(table)


@pytest.mark.integration
def test_local_cluster_workers_write_the_parts(model, recordings, tmp_path):
    pytest.importorskip("distributed")
    from daemon.batch.dask_runner import dask_runner

    files = find_audio_files([recordings])
    table, expected = gathered(model, files, OPTIONS, tmp_path / "all.parquet")
    summary = replay_into_parts(model, files, tmp_path / "parts", OPTIONS, dask_runner("local", 2))
    assert pq.read_table(tmp_path / "parts").equals(table)
    assert summary == expected
