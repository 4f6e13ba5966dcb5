"""--resume: a killed run continues where it stopped and writes the bytes of an uninterrupted run."""

from __future__ import annotations

import dataclasses

import pytest
from replay_fixtures import run_birdd, run_birdd_killed_after, stopping_after, write_recordings

from daemon.audio.files import find_audio_files
from daemon.batch.journal import journal_dir
from daemon.batch.replay import pool_runner
from daemon.batch.run import ReplayOptions, run_replay
from daemon.errors import ResumeError
from daemon.model.loader import load_model

OPTIONS = ReplayOptions("detections", 0.2, 5, 30)  # 30-s tasks: one file each


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    return write_recordings(tmp_path_factory.mktemp("recordings"), 60, 30, seed=5)


@pytest.mark.integration
def test_resume_after_sigkill_equals_a_full_run(trained_model, recordings, tmp_path):
    full = tmp_path / "full.csv"
    run_birdd("replay", recordings, "-m", trained_model, "-o", full, "-j", "1", "--format", "detections")
    out = tmp_path / "resumed.csv"
    args = ("replay", recordings, "-m", trained_model, "-o", out, "-j", "1", "--format", "detections", "--resume")
    parts = journal_dir(out)
    done = run_birdd_killed_after(args, parts, "*.npz", 15)
    assert 15 <= done < 60 and not out.exists()
    run_birdd(*args)
    assert out.read_bytes() == full.read_bytes()
    assert not parts.exists()


def test_interrupted_parquet_run_resumes_to_the_same_bytes(trained_model, recordings, tmp_path):
    model, files = load_model(trained_model), find_audio_files([recordings])[:12]
    run_replay(model, files, tmp_path / "full.parquet", OPTIONS, pool_runner(model, 1))
    out = tmp_path / "resumed.parquet"
    with pytest.raises(KeyboardInterrupt):
        run_replay(model, files, out, OPTIONS, stopping_after(pool_runner(model, 1), 5), resume=True)
    assert len(list(journal_dir(out).glob("*.npz"))) == 5
    summary = run_replay(model, files, out, OPTIONS, stopping_after(pool_runner(model, 1), 7), resume=True)
    assert summary.scored == 12
    assert out.read_bytes() == (tmp_path / "full.parquet").read_bytes()


@pytest.mark.parametrize("change", ["model", "hop"])
def test_resume_refuses_another_model_or_options(trained_model, recordings, tmp_path, change):
    model, files = load_model(trained_model), find_audio_files([recordings])[:4]
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        run_replay(model, files, out, OPTIONS, stopping_after(pool_runner(model, 1), 2), resume=True)
    other_model = dataclasses.replace(model, digest="0123456789abcdef") if change == "model" else model
    other_options = dataclasses.replace(OPTIONS, hop_seconds=2) if change == "hop" else OPTIONS
    with pytest.raises(ResumeError, match=f"cannot resume.*{'model' if change == 'model' else 'hop_seconds'}"):
        run_replay(other_model, files, out, other_options, pool_runner(model, 1), resume=True)
    assert len(list(journal_dir(out).glob("*.npz"))) == 2  # nothing already done is lost
