"""--dask: a LocalCluster, and a separately started scheduler with two workers (one killed mid-run), write the
bytes of the process pool."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import HOST, free_port
from replay_fixtures import birdd_command, run_birdd, write_recordings

from daemon.audio.files import find_audio_files
from daemon.batch.dask_runner import LOCAL, TRIM_VARIABLE, _client, _trim_threshold, dask_runner
from daemon.batch.journal import journal_dir
from daemon.batch.replay import pool_runner
from daemon.batch.run import ReplayOptions, run_replay
from daemon.model.loader import load_model

pytest.importorskip("distributed")
pytestmark = pytest.mark.integration

OPTIONS = ReplayOptions("submission", 0.5, 5, 60)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = write_recordings(tmp_path_factory.mktemp("recordings"), 40, 20, seed=9)
    write_recordings(folder / "long", 1, 150, seed=10)  # cut into 3 segments of 60 s
    return folder


@pytest.fixture(scope="module")
def pool_output(trained_model, recordings, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "pool.csv"
    run_birdd("replay", recordings, "-m", trained_model, "-o", out, "-j", "2", "--segment-minutes", "1")
    return out.read_bytes()


def test_local_cluster_equals_the_pool(trained_model, recordings, pool_output, tmp_path):
    model = load_model(trained_model)
    files = find_audio_files([recordings])
    run_replay(model, files, tmp_path / "pool.csv", OPTIONS, pool_runner(model, 2))
    assert (tmp_path / "pool.csv").read_bytes() == pool_output
    run_replay(model, files, tmp_path / "dask.csv", OPTIONS, dask_runner("local", 2))
    assert (tmp_path / "dask.csv").read_bytes() == pool_output


def test_local_workers_keep_glibc_memory_defaults():
    with _client(LOCAL, 2) as client:
        assert list(client.run(_trim_threshold).values()) == [None, None]


def test_workers_started_with_the_nannys_trim_threshold_are_warned_about(trained_model, recordings, tmp_path,
                                                                        caplog):
    port = free_port()
    address = f"tcp://{HOST}:{port}"
    dask = birdd_command()[0].replace("birdd", "dask")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([dask, "scheduler", "--host", HOST, "--port", str(port), "--no-dashboard"],
                                  **quiet)]
    try:
        processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host",
                                           HOST], **quiet))  # a nanny with Dask's default configuration
        model = load_model(trained_model)
        files = find_audio_files([recordings])[:2]
        run_replay(model, files, tmp_path / "dask.csv", OPTIONS, dask_runner(address))
        assert f"{TRIM_VARIABLE}=65536" in caplog.text and "docs/scale.md" in caplog.text
    finally:
        stop(processes)


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(trained_model, recordings, pool_output, tmp_path):
    port = free_port()
    address = f"tcp://{HOST}:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dask = birdd_command()[0].replace("birdd", "dask")
    processes = [subprocess.Popen([dask, "scheduler", "--host", HOST, "--port", str(port), "--no-dashboard"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                               "--no-dashboard", "--host", HOST], env=env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        out = tmp_path / "dask.csv"
        replay = subprocess.Popen(birdd_command("replay", recordings, "-m", trained_model, "-o", out, "--dask",
                                                address, "--segment-minutes", "1", "--resume"),
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while len(list(journal_dir(out).glob("*.npz"))) < 8 and replay.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert replay.poll() is None, "the run ended before a worker could be killed"
        processes[1].send_signal(signal.SIGKILL)
        _, stderr = replay.communicate(timeout=180)
        assert replay.returncode == 0, stderr
        assert out.read_bytes() == pool_output
    finally:
        stop(processes)


def stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
