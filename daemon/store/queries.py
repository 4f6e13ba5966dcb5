"""The read side of the detection store (``birdd web``): plain functions over a read-only connection.

Each returns rows as dicts keyed by the column names of :mod:`daemon.store.schema`, newest first
unless said otherwise; ``model`` is decoded from its JSON text. Detection rows also carry their review's
``verified`` (None when unreviewed) and ``locked`` (0 or 1).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
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


REVIEWED = ("SELECT detections.*, reviews.verified AS verified, COALESCE(reviews.locked, 0) AS locked "
            "FROM detections LEFT JOIN reviews ON reviews.detection = detections.id")
"""detection rows with their review's fields (a primary-key lookup per row)"""


def recent(conn: sqlite3.Connection, limit: int, min_confidence: float = 0.0) -> list[Row]:
    """The ``limit`` latest detections with at least ``min_confidence``."""
    return _rows(conn, f"{REVIEWED} WHERE confidence >= ? ORDER BY end_epoch DESC, id DESC LIMIT ?",
                 (min_confidence, limit))


def by_id(conn: sqlite3.Connection, row_id: int) -> Row | None:
    """One detection by its integer id, or None."""
    rows = _rows(conn, f"{REVIEWED} WHERE id = ?", (row_id,))
    return rows[0] if rows else None


def after_id(conn: sqlite3.Connection, last_id: int, limit: int) -> list[Row]:
    """Detections stored after ``last_id``, oldest first (what a live stream sends next)."""
    return _rows(conn, f"{REVIEWED} WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit))


def comments(conn: sqlite3.Connection, row_ids: list[int]) -> dict[int, list[Row]]:
    """The review comments of these detections, oldest first, by detection id (absent: none)."""
    found: dict[int, list[Row]] = {}
    if row_ids:
        for row in _rows(conn, "SELECT comment_id, detection, entry, created_utc FROM review_comments WHERE "
                               "detection IN (SELECT value FROM json_each(?)) ORDER BY comment_id",
                         (json.dumps(row_ids),)):
            found.setdefault(row["detection"], []).append(row)
    return found


def last_id(conn: sqlite3.Connection) -> int:
    """The highest id stored so far (0 for an empty store)."""
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM detections").fetchone()[0]


CONFIDENCE_OPERATORS = (">=", "<=", ">", "<", "=")
VERIFIED_FILTERS = {"correct": "verified = 'correct'", "false_positive": "verified = 'false_positive'",
                    "unverified": "verified IS NULL", "true": "verified IS NOT NULL", "false": "verified IS NULL"}
"""``verified=`` values: a verdict, unverified, or (as BirdNET-Go) true = reviewed either way, false = not"""
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class DetectionFilter:
    """Which detections a listing wants: every field optional, all of them AND-ed."""

    date: str | None = None
    """station-local day, ``YYYY-MM-DD``"""
    species: str | None = None
    """species code, or scientific or common name (names case-insensitive)"""
    confidence: tuple[str, float] | None = None
    """an operator from :data:`CONFIDENCE_OPERATORS` and a confidence 0..1"""
    hours: tuple[int, int] | None = None
    """first and last station-local hour (inclusive)"""
    source: str | None = None
    """the name of the source that heard it (``[[audio.sources]]`` name)"""
    verified: str | None = None
    """one of :data:`VERIFIED_FILTERS`"""
    locked: bool | None = None
    """locked (True) or not (False)"""

    def where(self) -> tuple[str, list]:
        """The SQL ``WHERE`` clause (or "") and its parameters."""
        clauses: list[str] = []
        args: list = []
        if self.date:
            clauses.append("local_date = ?")
            args.append(self.date)
        if self.species:
            clauses.append("(species_code = ? OR scientific_name = ? COLLATE NOCASE OR common_name = ? COLLATE NOCASE)")
            args += [self.species] * 3
        if self.confidence:
            operator, value = self.confidence
            if operator not in CONFIDENCE_OPERATORS:  # never interpolate anything else into SQL
                raise ValueError(f"confidence operator {operator!r}")
            clauses.append(f"confidence {operator} ?")
            args.append(value)
        if self.hours:
            clauses.append("substr(local_time, 1, 2) BETWEEN ? AND ?")
            args += [f"{self.hours[0]:02d}", f"{self.hours[1]:02d}"]
        if self.source:
            clauses.append("source_name = ?")
            args.append(self.source)
        if self.verified:
            clauses.append(VERIFIED_FILTERS[self.verified])  # a fixed clause: never the request's text
        if self.locked is not None:
            clauses.append("COALESCE(locked, 0) = ?")
            args.append(int(self.locked))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def search(conn: sqlite3.Connection, where: DetectionFilter, limit: int, offset: int,
           ascending: bool = False) -> tuple[list[Row], int]:
    """A page of the detections matching ``where`` (newest first unless ``ascending``) and how many match."""
    clause, args = where.where()
    order = "ASC" if ascending else "DESC"
    rows = _rows(conn, f"{REVIEWED}{clause} ORDER BY end_epoch {order}, id {order} LIMIT ? OFFSET ?",
                 (*args, limit, offset))
    total = conn.execute(f"SELECT count(*) FROM detections LEFT JOIN reviews ON reviews.detection = detections.id"
                         f"{clause}", args).fetchone()[0]
    return rows, total


@dataclass
class SpeciesDay:
    """One species on one station-local day (built up hour by hour)."""

    species_code: str
    common_name: str
    scientific_name: str
    count: int
    hourly_counts: list[int]
    max_confidence: float
    first_heard: str
    latest_heard: str


def species_day(conn: sqlite3.Connection, date: str, min_confidence: float = 0.0) -> list[SpeciesDay]:
    """Every species heard on a station-local day with its hourly counts, most detections first."""
    rows = conn.execute(
        "SELECT species_code, min(common_name), min(scientific_name), CAST(substr(local_time, 1, 2) AS INTEGER),"
        " count(*), max(confidence), min(local_time), max(local_time)"
        " FROM detections WHERE local_date = ? AND confidence >= ? GROUP BY species_code, 4",
        (date, min_confidence)).fetchall()
    days: dict[str, SpeciesDay] = {}
    for code, common, scientific, hour, count, best, first, latest in rows:
        day = days.setdefault(code, SpeciesDay(code, common, scientific, 0, [0] * HOURS_PER_DAY, 0.0, first, latest))
        day.hourly_counts[hour % HOURS_PER_DAY] += count
        day.count += count
        day.max_confidence = max(day.max_confidence, best)
        day.first_heard = min(day.first_heard, first)
        day.latest_heard = max(day.latest_heard, latest)
    return sorted(days.values(), key=lambda d: (-d.count, d.common_name))


def species_summary(conn: sqlite3.Connection, start_date: str | None = None, end_date: str | None = None
                    ) -> list[Row]:
    """Per species over station-local days (all when unbounded): ``count``, ``first_epoch``, ``last_epoch`` (window
    ends, the moment a detection's date and time name), ``avg_confidence``, ``max_confidence``; most detections
    first."""
    clauses, args = [], []
    if start_date:
        clauses.append("local_date >= ?")
        args.append(start_date)
    if end_date:
        clauses.append("local_date <= ?")
        args.append(end_date)
    clause = " WHERE " + " AND ".join(clauses) if clauses else ""
    return _rows(conn,
                 "SELECT species_code, min(common_name) AS common_name, min(scientific_name) AS scientific_name,"
                 " count(*) AS count, min(end_epoch) AS first_epoch, max(end_epoch) AS last_epoch,"
                 f" avg(confidence) AS avg_confidence, max(confidence) AS max_confidence FROM detections{clause}"
                 " GROUP BY species_code ORDER BY count DESC, common_name", tuple(args))


def day_counts(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """Detections per station-local day, newest day first."""
    return [(date, count) for date, count in conn.execute(
        "SELECT local_date, count(*) FROM detections GROUP BY local_date ORDER BY local_date DESC")]


def species_count(conn: sqlite3.Connection) -> int:
    """How many distinct species the store holds."""
    return conn.execute("SELECT count(DISTINCT species_code) FROM detections").fetchone()[0]


def seen_before(conn: sqlite3.Connection, species_code: str, before_id: int, since_date: str | None) -> bool:
    """True if the store holds a detection of ``species_code`` with an id below ``before_id`` (stored earlier), on or
    after the station-local day ``since_date`` (None: ever)."""
    return conn.execute(
        "SELECT 1 FROM detections WHERE species_code = ? AND id < ? AND local_date >= ? LIMIT 1",
        (species_code, before_id, since_date or "")).fetchone() is not None
def verified_reviews(conn: sqlite3.Connection) -> list[Row]:
    """Every review with a verdict, oldest detection first: ``detection``, ``verified``, ``audio`` and the
    detection's ``snapshot`` decoded (the row as it was at the first review)."""
    rows = _rows(conn, "SELECT detection, verified, audio, snapshot FROM reviews WHERE verified IS NOT NULL "
                       "ORDER BY detection")
    for row in rows:
        row["snapshot"] = json.loads(row["snapshot"])
    return rows
