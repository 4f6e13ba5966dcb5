"""Run ``birdd run`` as a real subprocess with a generated config.toml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def write_config(path: Path, tables: dict[str, dict[str, Any]]) -> Path:
    """Write ``tables`` (section -> key -> value) as TOML; the detection store and the clips go beside ``path``
    unless ``tables`` places them (a daemon under test never writes the default /var/lib/birdd)."""
    tables = {**tables, "store": {"path": str(path.with_name(f"{path.stem}.detections.sqlite")),
                                  **tables.get("store", {})},
              "clips": {"dir": str(path.with_name(f"{path.stem}.clips")), "min_free_mb": 0.0,
                        **tables.get("clips", {})}}
    lines = []
    for section, table in tables.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """A ``birdd run -c CONFIG`` subprocess; its stderr goes to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._stderr = log.open("ab")
        birdd = str(Path(sys.executable).with_name("birdd"))
        self.process = subprocess.Popen([birdd, "run", "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=self._stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._stderr.flush()

    def wait_for_log(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log.read_text(errors='replace')}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._stderr.close()


def replaying_daemon(tmp_path: Path, broker: Any, model: Path, corpus: Path, outbox: Path,
                     state: Path | None = None) -> Daemon:
    """Station ``fault`` replaying a test soundscape of ``corpus`` at real time in a loop (threshold 0, a window
    a second: several detections a second), publishing to ``broker``; the outbox at ``outbox``, the store and
    the clips in ``state`` (else beside the config), few clips."""
    soundscape = sorted((corpus / "test_soundscapes").iterdir())[0]
    state = state or tmp_path
    config = write_config(tmp_path / "config.toml", {
        "station": {"name": "fault"},
        "audio": {"source": "file", "files": [str(soundscape)], "realtime": True, "loop": True},
        "model": {"path": str(model)},
        "detection": {"threshold": 0.0, "window_hop_s": 1.0},
        "mqtt": {"host": broker.host, "port": broker.port, "ha_discovery": False, "status_interval_s": 1.0},
        "outbox": {"path": str(outbox)},
        "store": {"path": str(state / "detections.sqlite")},
        "clips": {"dir": str(state / "clips"), "keep_per_species_per_day": 2, "max_total_mb": 4.0},
    })
    return Daemon(config, tmp_path / "daemon.log")
