"""Error policy: a runtime fault exits 1, which the unit restarts; only a configuration error exits 2 (not restarted).

systemd is not PID 1 here, so the unit's own restart policy (``Restart=``, ``RestartPreventExitStatus=``,
``RestartSec=``, ``StartLimitBurst=``) is read from systemd/birdd.service and applied to each exit, as systemd would.
"""

import configparser
import socket
import time
from pathlib import Path

import pytest
from conftest import HOST, free_port
from daemon_process import Daemon, write_config
from disk_fixtures import fill, run

from daemon.config import OutboxConfig, StoreConfig
from daemon.sinks.outbox import Outbox
from daemon.store.writer import DetectionStore

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "birdd.service"


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    return unit


def systemd_restarts(exit_code: int) -> bool:
    """Would the unit restart birdd after it exits with ``exit_code``?"""
    service = read_unit()["Service"]
    assert service["Restart"] == "on-failure"
    prevented = {int(code) for code in service.get("RestartPreventExitStatus", "").split()}
    return exit_code != 0 and exit_code not in prevented


def config(tmp_path: Path, trained_model: Path, **tables: dict) -> Path:
    tables = {"audio": {"source": "file", "files": [str(tmp_path / "missing.wav")], "loop": True},
              "model": {"path": str(trained_model)}, "mqtt": {"enabled": False},
              "outbox": {"path": str(tmp_path / "outbox.sqlite")}, **tables}
    return write_config(tmp_path / "config.toml", tables)


def run_to_exit(path: Path, log: Path, timeout: float = 30.0) -> int:
    daemon = Daemon(path, log)
    try:
        return daemon.wait(timeout)
    finally:
        daemon.close()


def test_metrics_port_taken_exits_1_and_the_service_comes_back(tmp_path, trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[0]
    port = free_port()
    path = config(tmp_path, trained_model, metrics={"port": port},
                  audio={"source": "file", "files": [str(soundscape)], "realtime": False})
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        code = run_to_exit(path, tmp_path / "first.log")
    first = (tmp_path / "first.log").read_text()
    assert code == 1 and systemd_restarts(code), first
    assert f"metrics.port: cannot listen on 127.0.0.1:{port}" in first and "Traceback" not in first
    # the port is free again: the restart that systemd makes runs to the end of the input
    assert run_to_exit(path, tmp_path / "second.log") == 0, (tmp_path / "second.log").read_text()


def test_outbox_that_cannot_be_created_exits_1(tmp_path, trained_model):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox directory should be")
    code = run_to_exit(config(tmp_path, trained_model, outbox={"path": str(blocker / "outbox.sqlite")}),
                       tmp_path / "daemon.log")
    text = (tmp_path / "daemon.log").read_text()
    assert code == 1 and systemd_restarts(code), text
    assert text == f"birdd: error: outbox.path: {blocker} is not a directory\n"


def test_configuration_error_exits_2_and_is_not_restarted(tmp_path, trained_model):
    code = run_to_exit(config(tmp_path, trained_model, mqtt={"port": 0}), tmp_path / "daemon.log")
    assert code == 2 and not systemd_restarts(code)
    assert "mqtt.port: must be within 1..65535" in (tmp_path / "daemon.log").read_text()


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_state_directory_read_only_or_full_at_boot_exits_1_without_a_tight_loop(fault, small_fs, tmp_path,
                                                                                  trained_model):
    state = small_fs
    Outbox(OutboxConfig(path=str(state / "outbox.sqlite"))).close()  # what an earlier run left there
    DetectionStore(StoreConfig(path=str(state / "detections.sqlite"))).close()
    if fault == "read-only":
        run("mount", "-o", "remount,ro", str(state))  # nothing holds a file open for writing: allowed
        reason = "Read-only file system"
    else:
        fill(state)
        reason = "No space left on device"
    path = config(tmp_path, trained_model, outbox={"path": str(state / "outbox.sqlite")},
                  store={"path": str(state / "detections.sqlite")}, clips={"dir": str(state / "clips")})
    started = time.monotonic()
    code = run_to_exit(path, tmp_path / "daemon.log")
    took = time.monotonic() - started
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    assert code == 1 and systemd_restarts(code), lines
    assert lines == [f"birdd: error: outbox.path: cannot write in {state}: {reason}"]  # one line, before the model
    # restarted after RestartSec, at most StartLimitBurst times in StartLimitIntervalSec, then the unit stays failed
    unit = read_unit()
    restart_s, burst = float(unit["Service"]["RestartSec"]), int(unit["Unit"]["StartLimitBurst"])
    interval_s = float(unit["Unit"]["StartLimitIntervalSec"])
    assert restart_s >= 5 and burst * (restart_s + took) < interval_s and took < restart_s


def test_replay_files_missing_exit_1_before_the_store_opens(tmp_path, trained_model):
    path = config(tmp_path, trained_model, store={"path": str(tmp_path / "store.sqlite")},
                  clips={"dir": str(tmp_path / "clips")})  # config()'s audio file does not exist
    code = run_to_exit(path, tmp_path / "daemon.log")
    text = (tmp_path / "daemon.log").read_text()
    missing = tmp_path / "missing.wav"
    assert code == 1 and text.endswith(f"birdd: error: audio.files: no audio files found in {missing}\n")
    assert not (tmp_path / "store.sqlite").exists() and not any((tmp_path / "clips").glob("*"))  # only tried


def test_a_missing_model_names_model_path(tmp_path, trained_model):
    code = run_to_exit(config(tmp_path, trained_model, model={"path": str(tmp_path / "nowhere")}),
                       tmp_path / "daemon.log")
    text = (tmp_path / "daemon.log").read_text()
    assert code == 1 and systemd_restarts(code)  # a bundle still being copied in may be there at the next start
    assert text.startswith(f"birdd: error: model.path: {tmp_path / 'nowhere' / 'manifest.json'}: no model manifest")
    assert text.count("\n") == 1


def test_a_configuration_error_found_at_start_names_the_file_and_the_key(tmp_path, trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))[0]
    path = config(tmp_path, trained_model, detection={"include": str(tmp_path / "no-list.txt")},
                  audio={"source": "file", "files": [str(soundscape)]})
    code = run_to_exit(path, tmp_path / "daemon.log")
    text = (tmp_path / "daemon.log").read_text()
    assert code == 2 and not systemd_restarts(code)
    assert text.splitlines()[-1].startswith(f"birdd: error: {path}: detection.include: {tmp_path / 'no-list.txt'}")
