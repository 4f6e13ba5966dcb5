"""systemd/birdd-web.service: the detector's user and state, no devices, and ``birdd web`` serves inside its sandbox
(verify and the exposure score: tests/test_systemd_unit.py)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from unit_sandbox import UnitSandbox, directives, libseccomp
from web_fixtures import WebProcess, fill_store

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "birdd-web.service"
DETECTOR_UNIT = UNIT.with_name("birdd.service")
EXEC_START = "/opt/birdd/.venv/bin/birdd"
SECCOMP = libseccomp()

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def test_web_unit_shares_the_detectors_user_and_state_but_no_devices():
    web = {key: values[-1] for key, values in directives(UNIT.read_text()).items()}
    detector = {key: values[-1] for key, values in directives(DETECTOR_UNIT.read_text()).items()}
    assert web["ExecStart"] == f"{EXEC_START} web -c /etc/birdd/config.toml"
    assert (web["DynamicUser"], web["User"], web["StateDirectory"]) == ("yes", "birdd", detector["StateDirectory"])
    assert detector.get("User", "birdd") == "birdd"  # a DynamicUser's name defaults to the unit's: the same user
    expected = {"Type": "notify", "PrivateDevices": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes", "RestartPreventExitStatus": "2"}
    assert {key: web.get(key) for key in expected} == expected
    assert "SupplementaryGroups" not in web and "DeviceAllow" not in web  # no sound card


@pytest.mark.integration
@pytest.mark.skipif(SECCOMP is None, reason="libseccomp not installed")
def test_birdd_web_serves_in_the_units_sandbox(tmp_path, rng):
    store = fill_store(tmp_path / "station", rng, count=4)
    web = WebProcess(tmp_path, store.path, store.clips, preexec_fn=UnitSandbox(UNIT.read_text(), SECCOMP).load)
    try:
        for path in ("/api/v2/detections/recent", "/api/v2/health", "/api/v2/system/info", "/"):
            with urllib.request.urlopen(web.url + path, timeout=10) as response:
                assert response.status == 200
        with urllib.request.urlopen(f"{web.url}/api/v2/audio/{store.ids[1]}", timeout=10) as response:
            assert response.read(4) == b"fLaC"
        with urllib.request.urlopen(f"{web.url}/api/v2/health", timeout=10) as response:
            assert json.load(response)["database_status"] == "connected"
    finally:
        assert web.stop() == 0
    log = web.log.read_text()
    assert "Traceback" not in log and "not permitted" not in log, log
