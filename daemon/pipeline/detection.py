"""A detection: one species heard in one window, the unit the daemon publishes."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Detection:
    """One species over one window of one stream.

    ``detection_id`` is derived from station, source, stream start, window and species, so the
    same detection re-published after a crash or a broker outage keeps its id.
    """

    detection_id: str
    station: str
    source: str
    start: str  # ISO 8601 UTC, milliseconds
    end: str
    species_code: str
    common_name: str
    scientific_name: str
    confidence: float
    model: dict[str, str]

    def to_payload(self) -> dict:
        """The JSON object published on ``<prefix>/detections``."""
        return asdict(self)


def iso_utc(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-26T20:27:30.125Z``."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_detection_id(station: str, source: str, stream_start_epoch: float, window_end_sample: int,
                      species_code: str) -> str:
    """A stable id: the same inputs always give the same id."""
    key = f"{station}|{source}|{stream_start_epoch:.3f}|{window_end_sample}|{species_code}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]
