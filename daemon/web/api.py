"""BirdNET-Go-compatible ``/api/v2`` payloads built from the detection store.

Field names, nesting and units follow BirdNET-Go's handlers and JSON tags (``internal/api/v2``): detections
in camelCase (``commonName``, ``scientificName``, ``clipName``), analytics in snake_case (``hourly_counts``,
``max_confidence``), confidences as fractions 0..1, dates ``YYYY-MM-DD`` and times ``HH:MM:SS`` in the
station's local time, timestamps RFC 3339 with the offset. ``docs/web.md`` lists what birdd does not serve.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from daemon import __version__
from daemon.errors import StoreError
from daemon.store import queries
from daemon.store.queries import VERIFIED_FILTERS, DetectionFilter
from daemon.store.source_health import STALE_S, read_health
from daemon.store.writer import epoch_of
from daemon.web.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, MediaMissing, OpenMedia, open_media
from daemon.web.params import BadRequest, NotFound, Query
from daemon.web.pool import StorePool

DEFAULT_RECENT = 10
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000
HIGH_CONFIDENCE = 0.8
"""BirdNET-Go's ``high_confidence`` flag in the daily summary: the species' best detection reached this"""
MODEL_TYPE = "bird"
SPECTROGRAM_SIZES = ("sm", "md", "lg", "xl")
VERIFIED_CHOICES = tuple(VERIFIED_FILTERS)
MB = 1024 * 1024
PENDING_WINDOW_S = 20.0
"""a clip missing this soon after its window ended may still be written: the request waits for it"""
PENDING_WAIT_S = 5.0
PENDING_POLL_S = 0.1


def rfc3339(epoch: float) -> str:
    """An epoch as local time with its UTC offset, to the second (as Go's ``time.RFC3339``)."""
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def today() -> str:
    """The station-local date (the process's time zone is the station's)."""
    return dt.date.today().isoformat()


def detection_json(row: dict, with_source: bool, comments: list[dict] | None = None) -> dict:
    """One detection as BirdNET-Go's ``DetectionResponse`` (``clipName`` omitted when no clip is kept,
    ``comments`` when there are none)."""
    out = {
        "id": row["id"],
        "date": row["local_date"],
        "time": row["local_time"],
        "timestamp": rfc3339(row["end_epoch"]),  # the moment date and time name
        "beginTime": rfc3339(row["start_epoch"]),
        "endTime": rfc3339(row["end_epoch"]),
        "speciesCode": row["species_code"],
        "scientificName": row["scientific_name"],
        "commonName": row["common_name"],
        "confidence": round(float(row["confidence"]), 4),
        "modelType": MODEL_TYPE,
        "verified": row.get("verified") or "unverified",
        "locked": bool(row.get("locked")),
    }
    if comments:
        out["comments"] = [{"id": c["comment_id"], "entry": c["entry"],
                            "createdAt": rfc3339(epoch_of(c["created_utc"])),
                            "updatedAt": rfc3339(epoch_of(c["created_utc"]))} for c in comments]
    if row["clip"]:
        out["clipName"] = os.path.basename(row["clip"])
    if with_source and row["source"]:
        # as BirdNET-Go, only for authenticated clients: a device or file name is private
        out["source"] = {"id": row["source"], "displayName": row["source_name"] or row["source"]}
        if row["source_name"]:
            out["source"]["name"] = row["source_name"]
    return out


PROCESS_STATES = {"ok": "running", "starting": "starting", "waiting": "backoff", "failed": "backoff",
                  "finished": "stopped", "stopped": "stopped"}
"""a source's state (``sources.json``) as BirdNET-Go's ``process_state``: "waiting" (a mic retrying its device)
and "failed" (a dead source waiting for its restart) are its back-off"""
BYTES_PER_SAMPLE = 4
"""the rings hold float32 samples: ``total_bytes_received`` counts them as such"""


def stream_health_json(source: dict, now: float, fresh: bool, with_input: bool) -> dict:
    """One source as BirdNET-Go's ``StreamHealthResponse`` (plus birdd's counters); ``fresh``: the daemon is running.

    ``url`` is the input (device, file, stream URL without credentials) for authenticated clients, else the name.
    """
    state = PROCESS_STATES.get(source.get("state", ""), "stopped") if fresh else "stopped"
    last = source.get("last_audio")
    receiving = fresh and bool(source.get("is_receiving_data"))
    out = {"url": source.get("input", "") if with_input else source.get("name", ""), "source": source.get("name", ""),
           "type": source.get("type", ""), "is_healthy": fresh and bool(source.get("is_healthy")),
           "process_state": state, "last_data_received": rfc3339(last) if last else None,
           "restart_count": source.get("restarts", 0),
           "total_bytes_received": BYTES_PER_SAMPLE * source.get("samples", 0),
           "bytes_per_second": round(BYTES_PER_SAMPLE * source.get("samples_per_second", 0.0), 1) if receiving else 0.0,
           "is_receiving_data": receiving,
           **{key: source.get(key, 0) for key in ("gaps", "lost_samples", "overruns", "audio_seconds", "windows",
                                                   "detections")}}
    if last:
        out["time_since_data_seconds"] = round(max(0.0, now - last), 1)
    if source.get("error"):
        out["error"] = source["error"]
    return out


@dataclass(frozen=True)
class Unhealthy:
    """A health payload served with 503: the detection store cannot be read."""

    body: dict


class BirdnetGoApi:
    """The read-only endpoints; each method takes the validated query and returns a JSON-able payload."""

    def __init__(self, store: StorePool, clips_dir: Path, source_health: Path | None = None, *, csrf_token: str = "",
                 auth_required: bool = False, reviews_enabled: bool = False):
        """``source_health``: the daemon's ``sources.json`` (None: no stream endpoints data)."""
        self.store = store
        self.clips_dir = clips_dir
        self.source_health = source_health
        self.csrf_token = csrf_token
        self.auth_required = auth_required
        self.reviews_enabled = reviews_enabled
        self.started = time.time()

    def ping(self, query: Query, authenticated: bool) -> dict:
        return {"status": "ok"}

    def health(self, query: Query, authenticated: bool) -> dict | Unhealthy:
        try:
            with self.store.connection() as conn:
                queries.last_id(conn)
            error = None
        except StoreError as exc:
            error = str(exc)
        uptime = time.time() - self.started
        body = {"status": "healthy" if error is None else "unhealthy", "version": __version__, "build_date": "",
                "timestamp": rfc3339(time.time()), "environment": "production",
                "database_status": "connected" if error is None else "disconnected", "uptime": f"{uptime:.0f}s",
                "uptime_seconds": uptime, "system": _system_metrics(self.clips_dir)}
        if error is None:
            return body
        return Unhealthy(body | {"database_error": error})

    def recent(self, query: Query, authenticated: bool) -> list[dict]:
        limit = query.integer("limit", DEFAULT_RECENT, 1, MAX_PAGE)
        query.flag("includeWeather")  # accepted for compatibility; birdd has no weather
        with self.store.connection() as conn:
            return _detections_json(conn, queries.recent(conn, limit), authenticated)

    def detections(self, query: Query, authenticated: bool) -> dict:
        limit = query.integer("numResults", 0, 1, MAX_PAGE) or query.integer("limit", DEFAULT_PAGE, 1, MAX_PAGE)
        offset = query.integer("offset", 0, 0, MAX_OFFSET)
        query.choice("queryType", ("all", "hourly", "species"), "all")
        query.flag("includeWeather")
        order = query.choice("sortBy", ("date_desc", "date_asc"), "date_desc")
        confidence = query.confidence("confidence")
        minimum = query.percent("min_confidence")
        if confidence is None and minimum is not None:
            confidence = (">=", minimum)
        locked = query.choice("locked", ("true", "false"), "")
        verified = query.choice("verified", VERIFIED_CHOICES, "")
        where = DetectionFilter(date=query.date("date"), species=query.text("species"), confidence=confidence,
                                hours=query.hours("hour"), source=query.text("source"), verified=verified or None,
                                locked=None if not locked else locked == "true")
        with self.store.connection() as conn:
            rows, total = queries.search(conn, where, limit, offset, ascending=order == "date_asc")
            data = _detections_json(conn, rows, authenticated)
        return {"data": data, "total": total, "limit": limit,
                "offset": offset, "current_page": offset // limit + 1, "total_pages": -(-total // limit)}

    def detection(self, query: Query, authenticated: bool, detection_id: int) -> dict:
        with self.store.connection() as conn:
            row = queries.by_id(conn, detection_id)
            if row is None:
                raise NotFound(f"detection {detection_id} not found")
            return _detections_json(conn, [row], authenticated)[0]

    def app_config(self, query: Query, authenticated: bool) -> dict:
        """BirdNET-Go's ``/api/v2/app/config`` subset the page needs: the CSRF token (to an authenticated client
        only), whether access is allowed, and (birdd's) whether this client may review."""
        return {"csrfToken": self.csrf_token if authenticated else "", "version": __version__,
                "security": {"enabled": self.auth_required, "accessAllowed": authenticated or not self.auth_required},
                "reviews": authenticated and self.reviews_enabled}

    def species_daily(self, query: Query, authenticated: bool) -> list[dict]:
        date = query.date("date") or today()
        minimum = query.percent("min_confidence") or 0.0
        limit = query.integer("limit", 0, 0, MAX_PAGE)
        with self.store.connection() as conn:
            days = queries.species_day(conn, date, minimum)
        return [{"scientific_name": d.scientific_name, "common_name": d.common_name, "species_code": d.species_code,
                 "count": d.count, "hourly_counts": d.hourly_counts,
                 "high_confidence": d.max_confidence >= HIGH_CONFIDENCE, "max_confidence": round(d.max_confidence, 4),
                 "first_heard": d.first_heard, "latest_heard": d.latest_heard}
                for d in (days[:limit] if limit else days)]

    def species_summary(self, query: Query, authenticated: bool) -> list[dict]:
        start, end = query.date("start_date"), query.date("end_date")
        if start and end and start > end:
            raise BadRequest("start_date cannot be after end_date")
        limit = query.integer("limit", 0, 0, MAX_PAGE)
        with self.store.connection() as conn:
            rows = queries.species_summary(conn, start, end)
        return [{"scientific_name": r["scientific_name"], "common_name": r["common_name"],
                 "species_code": r["species_code"], "count": r["count"], "first_heard": rfc3339(r["first_epoch"]),
                 "last_heard": rfc3339(r["last_epoch"]), "avg_confidence": round(r["avg_confidence"], 4),
                 "max_confidence": round(r["max_confidence"], 4)}
                for r in (rows[:limit] if limit else rows)]

    def kpis(self, query: Query, authenticated: bool) -> dict:
        with self.store.connection() as conn:
            counts = queries.day_counts(conn)
            species = queries.species_count(conn)
        by_day = dict(counts)
        best_date, best_count = max(counts, key=lambda dc: (dc[1], dc[0]), default=("", 0))
        return {"lifetime_species": species, "today_detections": by_day.get(today(), 0),
                "best_day": {"date": best_date, "count": best_count},
                "detection_streak": _streak([date for date, _ in counts], today())}

    def system_info(self, query: Query, authenticated: bool) -> dict:
        uname = platform.uname()
        boot = _boot_time()
        release = _os_release()
        return {"hostname": socket.gethostname(), "platform_version": release.get("VERSION_ID", ""),
                "kernel_version": uname.release, "uptime_seconds": int(time.time() - boot),
                "boot_time": rfc3339(boot), "app_start_time": rfc3339(self.started),
                "app_uptime_seconds": int(time.time() - self.started), "num_cpu": os.cpu_count() or 1,
                "time_zone": time.strftime("%Z"),
                "os_display": release.get("PRETTY_NAME", uname.system), "architecture": uname.machine,
                "environment": "production"}

    def streams_health(self, query: Query, authenticated: bool) -> list[dict]:
        """Every source's health, as BirdNET-Go's ``GET /api/v2/streams/health``."""
        now, written_at, sources = self._sources()
        fresh = now - written_at < STALE_S
        return [stream_health_json(source, now, fresh, authenticated) for source in sources]

    def streams_status(self, query: Query, authenticated: bool) -> dict:
        """A summary of the sources, as BirdNET-Go's ``GET /api/v2/streams/status``."""
        now = time.time()
        streams = self.streams_health(query, authenticated)
        healthy = sum(s["is_healthy"] for s in streams)
        return {"total_streams": len(streams), "healthy_streams": healthy, "unhealthy_streams": len(streams) - healthy,
                "streams_summary": [{key: s[key] for key in ("url", "source", "is_healthy", "process_state",
                                                              "time_since_data_seconds") if key in s}
                                    for s in streams],
                "timestamp": rfc3339(now)}

    def _sources(self) -> tuple[float, float, list[dict]]:
        """Now, when the daemon last wrote ``sources.json``, and its sources (none if it never did)."""
        written_at, sources = read_health(self.source_health) if self.source_health else (0.0, [])
        return time.time(), written_at, sources

    def audio(self, query: Query, authenticated: bool, detection_id: int) -> OpenMedia:
        return self._media(detection_id, "clip", AUDIO_SUFFIXES)

    def spectrogram(self, query: Query, authenticated: bool, detection_id: int) -> OpenMedia:
        query.choice("size", SPECTROGRAM_SIZES, "lg")  # one rendering serves every size
        query.flag("raw")
        return self._media(detection_id, "spectrogram", IMAGE_SUFFIXES)

    def _media(self, detection_id: int, kind: str, suffixes: frozenset[str]) -> OpenMedia:
        """Open a detection's clip or spectrogram; one that the detector is still writing is waited for."""
        row = self._detection(detection_id)
        deadline = time.monotonic() + PENDING_WAIT_S
        while True:
            try:
                return open_media(self.clips_dir, row[kind], suffixes, kind)
            except MediaMissing:
                # as BirdNET-Go: the row is stored when the window ends, the clip about clips.margin_s later
                if time.time() - row["end_epoch"] > PENDING_WINDOW_S or time.monotonic() > deadline:
                    raise
                time.sleep(PENDING_POLL_S)

    def _detection(self, detection_id: int) -> dict:
        with self.store.connection() as conn:
            row = queries.by_id(conn, detection_id)
        if row is None:
            raise NotFound(f"detection {detection_id} not found")
        return row


def _detections_json(conn, rows: list[dict], authenticated: bool) -> list[dict]:
    """Detection rows as :func:`detection_json`, with their review comments (one query for all)."""
    notes = queries.comments(conn, [row["id"] for row in rows])
    return [detection_json(row, authenticated, notes.get(row["id"])) for row in rows]


def _streak(dates_newest_first: list[str], day: str) -> dict:
    """BirdNET-Go's detection streak: consecutive days with detections ending today (0 if none today)."""
    if not dates_newest_first or dates_newest_first[0] != day:
        return {"days": 0, "start_date": ""}
    start = dt.date.fromisoformat(day)
    for date in dates_newest_first[1:]:
        if date != (start - dt.timedelta(days=1)).isoformat():
            break
        start -= dt.timedelta(days=1)
    return {"days": (dt.date.fromisoformat(day) - start).days + 1, "start_date": start.isoformat()}


def _os_release() -> dict[str, str]:
    try:
        return platform.freedesktop_os_release()
    except OSError:
        return {}


def _boot_time() -> float:
    try:
        with open("/proc/uptime", encoding="ascii") as fh:
            return time.time() - float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()


def _system_metrics(clips_dir: Path) -> dict:
    """Memory and the clips file system, as BirdNET-Go's health ``system`` block (CPU: load per core)."""
    memory = {"used_percent": 0.0, "total_mb": 0.0, "used_mb": 0.0}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh if line.count(" ") >= 1}
        total, available = info["MemTotal"], info["MemAvailable"]
        memory = {"used_percent": round(100 * (total - available) / total, 1), "total_mb": round(total / MB, 1),
                  "used_mb": round((total - available) / MB, 1)}
    except (OSError, ValueError, KeyError, IndexError):
        pass
    disk = {"total_gb": 0.0, "free_gb": 0.0, "used_percent": 0.0}
    try:
        usage = shutil.disk_usage(clips_dir)
        disk = {"total_gb": round(usage.total / MB / 1024, 2), "free_gb": round(usage.free / MB / 1024, 2),
                "used_percent": round(100 * usage.used / usage.total, 1)}
    except OSError:
        pass
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 0.0
    return {"cpu_usage": round(min(100.0, 100 * load), 1), "memory": memory, "disk_space": disk}
