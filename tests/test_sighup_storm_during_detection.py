"""A SIGHUP storm while the daemon detects: every window is still scored once, no detection is lost or
doubled, the daemon keeps running and stops cleanly.

The same soundscape goes through ``birdd run`` twice: once quietly as fast as it goes, once at real time
(hop 1 s) with a SIGHUP every 20 ms (each one a model reload: the bundle is verified again; it has not
changed, so the running pipeline and its current window are kept). Both runs must score the same windows
and make the same detections, and the stormy one must exit 0 even with signals arriving while it exits.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from daemon_process import Daemon, write_config

pytestmark = pytest.mark.integration

HUP_EVERY_S = 0.02


def _run(tmp_path: Path, name: str, model: Path, soundscape: Path, broker, realtime: bool, storm: bool
         ) -> tuple[int, int, int, int]:
    """(exit status, windows, detections, reloads) of one run to the end of the file."""
    config = write_config(tmp_path / f"{name}.toml", {
        "station": {"name": name},
        "audio": {"source": "file", "files": [str(soundscape)], "realtime": realtime, "loop": False},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.0, "window_hop_s": 1.0},
        "mqtt": {"host": broker.host, "port": broker.port, "ha_discovery": False},
        "outbox": {"path": str(tmp_path / f"{name}.sqlite")},
    })
    daemon = Daemon(config, tmp_path / f"{name}.log")
    try:
        daemon.wait_for_log("birdd running", timeout=60)
        signals = 0
        while storm and daemon.process.poll() is None:
            daemon.signal(signal.SIGHUP)
            signals += 1
            time.sleep(HUP_EVERY_S)
        code = daemon.wait(60)
    finally:
        daemon.close()
    text = daemon.log.read_text()
    stopped = re.search(r"birdd stopped: [0-9.]+ s of audio, (\d+) windows, (\d+) detections", text)
    assert stopped, text[-2000:]
    assert not storm or signals > 100
    return code, int(stopped[1]), int(stopped[2]), text.count("model reload: ")


def test_sighup_storm_loses_and_doubles_nothing(tmp_path, mosquitto, trained_model, synthetic_corpus):
    soundscape = sorted((synthetic_corpus / "test_soundscapes").iterdir())[0]
    quiet = _run(tmp_path, "quiet", trained_model, soundscape, mosquitto, realtime=False, storm=False)
    stormy = _run(tmp_path, "stormy", trained_model, soundscape, mosquitto, realtime=True, storm=True)
    assert quiet[0] == stormy[0] == 0
    assert stormy[1:3] == quiet[1:3] and quiet[1] > 0
    assert stormy[3] >= 5  # reloads happened (signals that arrive during a reload coalesce into the next one)
