"""The unit file passes `systemd-analyze verify` and scores below 3.0 in `systemd-analyze security`."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "birdd.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def test_unit_verifies(tmp_path):
    # verify checks that ExecStart exists: point a copy at a binary that does
    unit = tmp_path / "birdd.service"
    unit.write_text(UNIT.read_text().replace("/opt/birdd/.venv/bin/birdd", shutil.which("true")))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "birdd.service" not in proc.stderr, proc.stderr  # no warning about our unit


def test_security_exposure_below_3():
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True,
                          text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for birdd\.service: ([\d.]+)", proc.stdout).group(1))
    assert score < 3.0, proc.stdout


def test_unit_is_notify_with_watchdog_and_sandbox():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "DynamicUser=yes", "SupplementaryGroups=audio", "StateDirectory=birdd", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
                 "MemoryMax="):
        assert line in text
