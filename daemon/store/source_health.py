"""Each source's health, written by the daemon beside the detection store and read by ``birdd web``.

The daemon and the web are separate processes; the web reads only the store's directory. So the daemon
replaces ``sources.json`` there atomically (:class:`daemon.atomic.AtomicWriter`) when a source changes
state and every :data:`WRITE_PERIOD_S` seconds otherwise: the reader sees the previous file or the new
one, never half of one. Times are epoch seconds; the web turns them into BirdNET-Go's shapes
(``/api/v2/streams/health``, ``/api/v2/streams/status``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.atomic import AtomicWriter

FILE_NAME = "sources.json"
WRITE_PERIOD_S = 5.0
"""how often the daemon rewrites the file while nothing changes (seconds): a tiny file, one fsync"""
STALE_S = 3 * WRITE_PERIOD_S
"""a file older than this was left by a daemon that is no longer running"""


def health_path(store_path: str | Path) -> Path:
    """``sources.json`` in the directory of the detection store."""
    return Path(store_path).with_name(FILE_NAME)


def write_health(path: Path, written_at: float, sources: list[dict[str, Any]]) -> None:
    """Replace the file with ``sources`` (one JSON object per source) as of ``written_at`` (epoch seconds)."""
    with AtomicWriter(path) as out:
        out.write(json.dumps({"written_at": written_at, "sources": sources}, separators=(",", ":")))


def read_health(path: Path) -> tuple[float, list[dict[str, Any]]]:
    """``(written_at, sources)``; ``(0.0, [])`` when the daemon has not written the file (or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return float(data["written_at"]), [s for s in data["sources"] if isinstance(s, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, []
