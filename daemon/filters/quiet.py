"""Quiet hours: local-time ranges (``filters.quiet_hours``) in which no detection is reported, or no audio kept."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo

from daemon.config import QUIET_RANGE

SECONDS_PER_DAY = 86_400


def parse_range(entry: str) -> tuple[int, int]:
    """``"22:00-06:00"`` -> (79200, 21600): start and end as seconds of the local day (validated by the config)."""
    match = QUIET_RANGE.match(entry)
    if match is None:
        raise ValueError(f"{entry!r}: expected HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return (h1 * 60 + m1) * 60, (h2 * 60 + m2) * 60


class QuietHours:
    """Is a moment (seconds since 1970) inside one of the ranges, in ``timezone`` ("" = the system's)?"""

    def __init__(self, ranges: list[str], timezone: str = "") -> None:
        self._ranges = [parse_range(entry) for entry in ranges]
        self._zone: tzinfo | None = zoneinfo.ZoneInfo(timezone) if timezone else None

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def at(self, epoch: float) -> bool:
        """True when ``epoch`` falls in quiet hours (a range whose end is before its start runs past midnight)."""
        local = datetime.fromtimestamp(epoch, UTC).astimezone(self._zone)
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return any(start <= second < end if start <= end else (second >= start or second < end)
                   for start, end in self._ranges)
