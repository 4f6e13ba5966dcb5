"""Error policy: a runtime fault exits 1, which the unit restarts; only a configuration error exits 2 (not restarted).

systemd is not PID 1 here, so the unit's own restart policy (``Restart=``, ``RestartPreventExitStatus=``) is read
from systemd/birdd.service and applied to each exit, as systemd would.
"""

import configparser
import socket
from pathlib import Path

import pytest
from conftest import HOST, free_port
from daemon_process import Daemon, write_config

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "birdd.service"


def systemd_restarts(exit_code: int) -> bool:
    """Would the unit restart birdd after it exits with ``exit_code``?"""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    service = unit["Service"]
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
    assert "outbox.path: cannot open" in text and "Traceback" not in text


def test_configuration_error_exits_2_and_is_not_restarted(tmp_path, trained_model):
    code = run_to_exit(config(tmp_path, trained_model, mqtt={"port": 0}), tmp_path / "daemon.log")
    assert code == 2 and not systemd_restarts(code)
    assert "mqtt.port: must be within 1..65535" in (tmp_path / "daemon.log").read_text()
