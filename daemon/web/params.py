"""Query-string validation: every parameter an endpoint reads is checked, and a bad one is a one-line 400.

Names and syntax follow BirdNET-Go's ``/api/v2`` (``limit``/``numResults``, ``offset``, ``date``, ``species``,
``confidence`` as ``[op]percent``, ``min_confidence`` as a percentage), so its clients work unchanged.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from urllib.parse import parse_qs

from daemon.errors import BirddError
from daemon.store.queries import CONFIDENCE_OPERATORS, HOURS_PER_DAY

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INT_PATTERN = re.compile(r"^[0-9]{1,9}$")
HOUR_PATTERN = re.compile(r"^([0-9]{1,2})(?:-([0-9]{1,2}))?$")
MAX_QUERY_LENGTH = 2048
MAX_VALUE_LENGTH = 200
PERCENT = 100.0


class HttpError(BirddError):
    """A request the server refuses; ``status`` is the HTTP status, the message one line for the client."""

    status = 400


class BadRequest(HttpError):
    """A bad query parameter or path (400; the message names the parameter)."""


class NotFound(HttpError):
    """No such route, detection, clip or spectrogram (404)."""

    status = 404


class Query:
    """The parsed query string of one request, limited to the names an endpoint accepts."""

    def __init__(self, query_string: str, accepted: frozenset[str]):
        if len(query_string) > MAX_QUERY_LENGTH:
            raise BadRequest(f"query string longer than {MAX_QUERY_LENGTH} characters")
        try:
            values = parse_qs(query_string, keep_blank_values=True, strict_parsing=bool(query_string),
                              errors="strict", max_num_fields=len(accepted) + 1)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed query string") from None
        for name, given in values.items():
            if name not in accepted:
                known = ", ".join(sorted(accepted)) or "none"
                raise BadRequest(f"unknown parameter {_show(name)} (accepted: {known})")
            if len(given) > 1:
                raise BadRequest(f"{name}: given more than once")
            if len(given[0]) > MAX_VALUE_LENGTH or any(ord(c) < 32 for c in given[0]):
                raise BadRequest(f"{name}: value too long or with control characters")
        self._values = {name: given[0] for name, given in values.items()}

    def text(self, name: str) -> str | None:
        """The raw value, or None when absent or empty."""
        return self._values.get(name) or None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number within ``low..high``."""
        raw = self.text(name)
        if raw is None:
            return default
        if not INT_PATTERN.match(raw) or not low <= int(raw) <= high:
            raise BadRequest(f"{name}: expected a whole number from {low} to {high}, got {_show(raw)}")
        return int(raw)

    def date(self, name: str) -> str | None:
        """A calendar date ``YYYY-MM-DD``."""
        raw = self.text(name)
        if raw is None:
            return None
        try:
            if not DATE_PATTERN.match(raw):
                raise ValueError
            dt.date.fromisoformat(raw)
        except ValueError:
            raise BadRequest(f"{name}: invalid date {_show(raw)}, use YYYY-MM-DD") from None
        return raw

    def percent(self, name: str) -> float | None:
        """A percentage 0..100 returned as a fraction 0..1 (BirdNET-Go's ``min_confidence``)."""
        raw = self.text(name)
        return None if raw is None else _percent(name, raw)

    def confidence(self, name: str) -> tuple[str, float] | None:
        """BirdNET-Go's confidence filter: an optional operator (>=, <=, >, <, =) and a percentage."""
        raw = self.text(name)
        if raw is None:
            return None
        operator = next((op for op in CONFIDENCE_OPERATORS if raw.startswith(op)), "=")
        number = raw[len(operator):] if raw.startswith(operator) else raw
        return operator, _percent(name, number)

    def hours(self, name: str) -> tuple[int, int] | None:
        """An hour ``H`` or an inclusive range ``H-H`` (0..23)."""
        raw = self.text(name)
        if raw is None:
            return None
        match = HOUR_PATTERN.match(raw)
        first = int(match.group(1)) if match else -1
        last = int(match.group(2)) if match and match.group(2) else first
        if not (0 <= first <= last < HOURS_PER_DAY):
            raise BadRequest(f"{name}: expected an hour 0-23 or a range like 6-9, got {_show(raw)}")
        return first, last

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        """One of ``options``."""
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in options:
            raise BadRequest(f"{name}: expected one of {', '.join(options)}, got {_show(raw)}")
        return raw

    def flag(self, name: str) -> bool:
        """``true`` or ``false`` (absent = false)."""
        return self.choice(name, ("true", "false"), "false") == "true"


def _percent(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= PERCENT:  # also refuses nan and inf
        raise BadRequest(f"{name}: expected a percentage from 0 to 100, got {_show(raw)}")
    return value / PERCENT


def _show(value: str) -> str:
    """A value quoted for an error message, cut short."""
    return repr(value[:40] + ("..." if len(value) > 40 else ""))
