"""A detection: one species heard in one window, the unit the daemon publishes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from daemon.constants import SAMPLE_RATE


@dataclass(frozen=True)
class Detection:
    """One species over one window of one stream.

    ``detection_id`` is derived from station, source name, input, stream start, window and species, so the
    same detection re-published after a crash or a broker outage keeps its id. ``source`` is the input the
    window came from (a file path, ``mic:<device>``); ``source_name`` the configured source that heard it
    (``[[audio.sources]]`` name, "default" for a daemon of one source).
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
    source_name: str = ""

    def to_payload(self) -> dict:
        """The JSON object published on ``<prefix>/detections``."""
        return asdict(self)


def iso_utc(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-26T20:27:30.125Z``."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_detection_id(station: str, source: str, stream_start_epoch: float, window_end_sample: int,
                      species_code: str, source_name: str = "") -> str:
    """A stable id: the same inputs always give the same id (two sources replaying one file get different ids)."""
    named = f"{source_name}|" if source_name else ""
    key = f"{station}|{named}{source}|{stream_start_epoch:.3f}|{window_end_sample}|{species_code}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class StreamClock:
    """Maps stream sample indices to wall-clock time: sample 0 was heard at :attr:`epoch` (seconds since 1970).

    The service starts it right before the source, so that every timestamp stays a sample index
    until it is turned into wall-clock time at the edge.
    """

    def __init__(self, epoch: float = 0.0) -> None:
        self.epoch = epoch

    def start(self) -> None:
        """Sample 0 is now."""
        self.epoch = time.time()

    def at(self, sample: int) -> float:
        """Wall-clock time (epoch seconds) of stream sample ``sample``."""
        return self.epoch + sample / SAMPLE_RATE
