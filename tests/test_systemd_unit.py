"""The unit file verifies, scores below 3.0, and the daemon works inside its system-call sandbox.

``systemd-analyze`` checks the file; the sandbox tests load the unit's ``SystemCallFilter=``,
``RestrictAddressFamilies=`` and ``MemoryDenyWriteExecute=`` into a real ``birdd run`` (and a real
PortAudio capture) with libseccomp, since no systemd runs here (see tests/unit_sandbox.py).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_process import write_config
from test_source_mic_alsa_file_device import ASOUNDRC
from unit_sandbox import UnitSandbox, directives, libseccomp

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "birdd.service"
UNITS = ("birdd.service", "birdd-web.service")
"""the detector's unit and the web's (tests/test_systemd_web_unit.py checks the web's own directives)"""
EXEC_START = "/opt/birdd/.venv/bin/birdd"
SECCOMP = libseccomp()

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
needs_seccomp = pytest.mark.skipif(SECCOMP is None, reason="libseccomp not installed")


@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies(tmp_path, name):
    unit = tmp_path / name  # verify wants ExecStart to exist: point a copy at one that does
    unit.write_text((UNIT.parent / name).read_text().replace(EXEC_START, shutil.which("true")))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert name not in proc.stderr, proc.stderr  # no warning about our unit


@pytest.mark.parametrize("name", UNITS)
def test_security_exposure_below_3(name):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT.parent / name)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(rf"Overall exposure level for {re.escape(name)}: ([\d.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) < 3.0, proc.stdout


def test_unit_is_notify_with_watchdog_reload_and_sandbox():
    found = {key: values[-1] for key, values in directives(UNIT.read_text()).items()}
    assert found["ExecStart"] == f"{EXEC_START} run -c /etc/birdd/config.toml"
    expected = {"Type": "notify", "NotifyAccess": "main", "ExecReload": "/bin/kill -HUP $MAINPID",
                "Restart": "on-failure", "RestartPreventExitStatus": "2",
                "DynamicUser": "yes", "SupplementaryGroups": "audio",
                "StateDirectory": "birdd", "ConfigurationDirectory": "birdd", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                "DevicePolicy": "closed", "DeviceAllow": "char-alsa rw", "SystemCallErrorNumber": "EPERM"}
    assert {key: found.get(key) for key in expected} == expected
    assert 10 <= int(found["WatchdogSec"]) <= 300
    assert int(found["RestartSec"]) >= 1 and int(found["StartLimitBurst"]) >= 1
    assert found["MemoryMax"].endswith("M")


@needs_seccomp
def test_sandbox_emulation_enforces_the_unit():
    """The emulation itself: a netlink socket, setuid and sched_setaffinity are refused, AF_INET is not."""
    probe = """
import os, socket
socket.socket(socket.AF_INET).close()
for call in (lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW), lambda: os.setuid(0),
             lambda: os.sched_setaffinity(0, {0})):
    try:
        call()
        print("allowed")
    except OSError as exc:
        print(exc.errno)
"""
    sandbox = UnitSandbox(UNIT.read_text(), SECCOMP)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
                          preexec_fn=sandbox.load)
    assert proc.stdout.split() == [str(errno.EAFNOSUPPORT), str(errno.EPERM), str(errno.EPERM)], proc.stderr


@pytest.mark.integration
@needs_seccomp
def test_daemon_in_the_units_sandbox_notifies_systemd_and_publishes(tmp_path, mosquitto, subscribe, trained_model,
                                                                     synthetic_corpus):
    files = sorted(str(p) for p in (synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "test"},
        "audio": {"source": "file", "files": files, "realtime": False, "loop": True},
        "model": {"path": str(trained_model)},
        "detection": {"threshold": 0.3},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        "archive": {"enabled": True, "dir": str(tmp_path / "archive"), "minutes_per_hour": 60},
    })
    sub = subscribe(mosquitto, "birdd/test/detections")
    log = tmp_path / "birdd.log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, log.open("wb") as stderr:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000",
               "PYTHONUNBUFFERED": "1"}
        sandbox = UnitSandbox(UNIT.read_text(), SECCOMP)
        daemon = subprocess.Popen([str(Path(sys.executable).with_name("birdd")), "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=stderr, env=env, preexec_fn=sandbox.load)
        try:
            received = _receive_until(notify, lambda m: m.count("WATCHDOG=1") >= 2)
            assert received[0].startswith("READY=1\nSTATUS=listening"), received
            sub.wait_for(lambda m: len(m) >= 1, timeout=30)  # MQTT over AF_INET, outbox in SQLite
            daemon.send_signal(signal.SIGHUP)
            reload = _receive_until(notify, lambda m: "READY=1" in m)
            assert reload[0].startswith("RELOADING=1\nMONOTONIC_USEC=") and reload[-1] == "READY=1", reload
            daemon.send_signal(signal.SIGTERM)
            assert "STOPPING=1" in _receive_until(notify, lambda m: "STOPPING=1" in m)
            assert daemon.wait(15) == 0, log.read_text()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
    text = log.read_text()
    assert "Traceback" not in text and "not permitted" not in text, text
    assert "model reload: " in text, text
    assert list((tmp_path / "archive").rglob("*.flac")), text  # FLAC, mkstemp, fsync, rename under the filter


CAPTURE = """
import sys, time
import sounddevice as sd
if "birdtest" not in [d["name"] for d in sd.query_devices()]:
    sys.exit(77)
frames = []
with sd.InputStream(device="birdtest", channels=1, samplerate=48000, dtype="int16",
                    callback=lambda data, n, t, status: frames.append(n)):
    deadline = time.monotonic() + 10
    while sum(frames) < 48000 and time.monotonic() < deadline:
        time.sleep(0.05)
print(sum(frames))
"""


@pytest.mark.integration
@needs_seccomp
def test_portaudio_capture_in_the_units_sandbox(tmp_path, rng):
    """ALSA through PortAudio, with sounddevice's cffi callback: what MemoryDenyWriteExecute=yes would break."""
    infile = tmp_path / "in.raw"
    (rng.standard_normal(48000 * 2) * 3000).astype("<i2").tofile(infile)
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(rate=48000, infile=infile))
    sandbox = UnitSandbox(UNIT.read_text(), SECCOMP)
    proc = subprocess.run([sys.executable, "-c", CAPTURE], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp_path)}, preexec_fn=sandbox.load)
    if proc.returncode == 77:
        pytest.skip("ALSA has no 'birdtest' device here")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 48000


def _receive_until(sock: socket.socket, done, timeout: float = 30.0) -> list[str]:
    """Datagrams from ``sock`` until ``done(messages)``; fails after ``timeout`` seconds."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        assert time.monotonic() < deadline, f"sd_notify messages so far: {messages}"
        messages.append(sock.recv(4096).decode())
    return messages

