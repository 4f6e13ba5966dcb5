"""The read side of the detection store (``birdd web``): plain functions over a read-only connection.

Each returns rows as dicts keyed by the column names of :mod:`daemon.store.schema`, newest first
unless said otherwise; ``model`` is decoded from its JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

Row = dict[str, Any]


def _rows(conn: sqlite3.Connection, sql: str, args: tuple = ()) -> list[Row]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    for row in rows:
        if isinstance(row.get("model"), str):
            row["model"] = json.loads(row["model"])
    return rows


def recent(conn: sqlite3.Connection, limit: int, min_confidence: float = 0.0) -> list[Row]:
    """The ``limit`` latest detections with at least ``min_confidence``."""
    return _rows(conn, "SELECT * FROM detections WHERE confidence >= ? ORDER BY end_epoch DESC, id DESC LIMIT ?",
                 (min_confidence, limit))


def by_id(conn: sqlite3.Connection, row_id: int) -> Row | None:
    """One detection by its integer id, or None."""
    rows = _rows(conn, "SELECT * FROM detections WHERE id = ?", (row_id,))
    return rows[0] if rows else None


def after_id(conn: sqlite3.Connection, last_id: int, limit: int) -> list[Row]:
    """Detections stored after ``last_id``, oldest first (what a live stream sends next)."""
    return _rows(conn, "SELECT * FROM detections WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit))


def last_id(conn: sqlite3.Connection) -> int:
    """The highest id stored so far (0 for an empty store)."""
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM detections").fetchone()[0]
