"""The latest sound level of each source, in a small JSON file beside the detection store.

The daemon replaces ``soundlevel.json`` (in the directory of ``store.path``) at every report, atomically and
without fsync (a report lost in a power cut is replaced a few seconds later); ``birdd web``, a separate
process that only reads the store's directory, reads it when its modification time changes and sends new
reports on the live stream. The file maps each source name to its last report (the MQTT payload).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from daemon.atomic import AtomicWriter

log = logging.getLogger(__name__)

FILE_NAME = "soundlevel.json"


def latest_levels_path(store_path: str | Path) -> Path:
    """Where the latest sound levels of a store at ``store_path`` are kept."""
    return Path(store_path).with_name(FILE_NAME)


class LatestLevelsWriter:
    """The daemon side: keeps each source's last report and rewrites the file (one writer per daemon)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.failures = 0
        """reports that could not be written (disk full, read-only): counted and logged, never fatal"""

    def __call__(self, payload: dict[str, Any]) -> None:
        """Record ``payload`` as the latest of ``payload["source"]`` and rewrite the file."""
        with self._lock:
            self._latest[payload["source"]] = payload
            try:
                with AtomicWriter(self.path, durable=False) as out:
                    out.write(json.dumps(self._latest, separators=(",", ":")))
            except OSError as exc:
                self.failures += 1
                log.warning("sound level: cannot write %s (%s)", self.path, exc.strerror or exc)


class LatestLevelsReader:
    """The web side: the reports that changed since the last call (by modification time; nothing if absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: dict[str, str] = {}  # source -> timestamp of the report already returned
        self._mtime = 0

    def new_reports(self) -> list[dict[str, Any]]:
        """Reports whose timestamp differs from the one last returned for their source."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime == self._mtime:
                return []
            latest = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        self._mtime = mtime
        if not isinstance(latest, dict):
            return []
        fresh = [report for source, report in latest.items()
                 if isinstance(report, dict) and self._seen.get(source) != report.get("timestamp")]
        self._seen.update((str(report.get("source")), report.get("timestamp")) for report in fresh)
        return fresh
