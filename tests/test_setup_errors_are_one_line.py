"""A check ``birdd setup`` cannot pass is one line naming what failed, and nothing is installed."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST, free_port

BIRDD = str(Path(sys.executable).with_name("birdd"))
PLACE = ("--lat", "42.45", "--lon", "-76.5")

pytestmark = pytest.mark.integration


def setup(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIRDD, "setup", "--root", str(root), *args], capture_output=True, text=True, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    return proc.stderr.strip()


def test_a_refused_broker(tmp_path):
    port = free_port()
    assert one_error_line(setup(tmp_path / "root", *PLACE, "--broker", f"{HOST}:{port}")) == \
        f"birdd: error: broker {HOST}:{port}: connection refused"
    assert not (tmp_path / "root").exists()


def test_a_port_that_is_not_a_broker(tmp_path):
    with socket.socket() as silent:  # accepts the TCP connection, never answers MQTT
        silent.bind((HOST, 0))
        silent.listen()
        port = silent.getsockname()[1]
        line = one_error_line(setup(tmp_path / "root", *PLACE, "--broker", f"{HOST}:{port}"))
    assert line == f"birdd: error: broker {HOST}:{port}: no MQTT answer within 5 s"


def test_a_missing_microphone_an_unreachable_stream_and_a_bad_model(tmp_path, mosquitto):
    broker = ("--broker", f"{mosquitto.host}:{mosquitto.port}")
    mic = one_error_line(setup(tmp_path / "root", *PLACE, *broker, "--mic", "no-such-card"))
    assert mic.startswith("birdd: error: microphone 'no-such-card': ") and "(arecord -l: " in mic, mic
    port = free_port()
    stream = one_error_line(setup(tmp_path / "root", *PLACE, *broker, "--url", f"rtsp://cam:s3cret@{HOST}:{port}/x"))
    assert stream == f"birdd: error: stream rtsp://***@{HOST}:{port}/x: connection refused"  # no password shown
    (tmp_path / "model").mkdir()
    (tmp_path / "stream.flac").write_bytes(b"")  # a file stream: only its existence is checked
    model = one_error_line(setup(tmp_path / "root", *PLACE, *broker, "--url", str(tmp_path / "stream.flac"), "--model",
                                 str(tmp_path / "model")))
    assert model.startswith(f"birdd: error: model {tmp_path / 'model'}: "), model
    assert not (tmp_path / "root").exists()


def test_usage_errors_name_the_option(tmp_path):
    for args, said in [((), "--lat and --lon are required"), ((*PLACE, "--mic", "a", "--url", "b"), "not both"),
                       ((*PLACE, "--broker", "host:port"), "--broker host:port: expected HOST:PORT"),
                       (("--purge",), "--purge goes with --uninstall")]:
        proc = setup(tmp_path / "root", *args)
        assert proc.returncode in (1, 2) and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
