"""Which minutes of each hour the archive keeps: ``minutes_per_hour`` of them, spread evenly over the hour.

Spread, not the first N: a student distilled from the archive learns from the variety of what the station
hears, and minute 1 sounds much like minute 0 (the same birds, wind and traffic), less like minute 30. The
pattern also moves on by one minute every hour, cycling over ``ceil(60 / N)`` hours, so that every minute of the
hour is sampled in turn (within a day from 3 minutes an hour on): a sound on a fixed schedule (a bell on the hour,
a pump on a timer) is neither kept every hour nor never. Hours and minutes are UTC, like the archive's file names.
"""

from __future__ import annotations

import functools

from daemon.config import MINUTES_PER_HOUR

SECONDS_PER_MINUTE = 60


@functools.lru_cache(maxsize=4)
def kept_minutes(hour: int, minutes_per_hour: int) -> frozenset[int]:
    """The minutes (0..59) kept of hour number ``hour`` (whole hours since 1970, UTC)."""
    spacing = -(-MINUTES_PER_HOUR // minutes_per_hour)  # ceil: the shift stays below the gap between minutes
    shift = hour % spacing
    return frozenset(shift + i * MINUTES_PER_HOUR // minutes_per_hour for i in range(minutes_per_hour))


def is_kept(minute: int, minutes_per_hour: int) -> bool:
    """Is minute number ``minute`` (whole minutes since 1970, UTC) kept?"""
    hour, within = divmod(minute, MINUTES_PER_HOUR)
    return within in kept_minutes(hour, minutes_per_hour)
