"""When a recording started: from its file name or its metadata, so that detections get absolute times.

Sources, first match wins:

1. ``--time-pattern``: a :func:`time.strptime` pattern searched in the file name (without suffix), e.g.
   ``site3-%Y-%m-%d_%H%M`` (``%Y %y %m %d %j %H %M %S %f %z`` and literal text; ``%%`` is a percent sign);
2. GUANO metadata (a ``guan`` chunk in WAV files: ``Timestamp: 2024-05-01T05:30:00-04:00``);
3. AudioMoth's WAV comment (``Recorded at 05:30:00 01/05/2024 (UTC+1) by AudioMoth ...``);
4. the recorder naming conventions: AudioMoth ``YYYYMMDD_HHMMSS.WAV`` and Song Meter / Wildlife Acoustics
   ``PREFIX_YYYYMMDD_HHMMSS.wav`` (also ``PREFIX_0+1_YYYYMMDD_HHMMSS``).

Times without an offset (file names, GUANO without one) are taken as UTC, as AudioMoth writes them; give a
pattern with ``%z`` for local-time names.
"""

from __future__ import annotations

import logging
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from daemon.errors import ConfigError

log = logging.getLogger(__name__)

_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "j": r"\d{3}", "H": r"\d{2}",
               "M": r"\d{2}", "S": r"\d{2}", "f": r"\d{1,6}", "z": r"(?:Z|[+-]\d{2}:?\d{2})"}
_RECORDER_NAME = re.compile(r"(?:^|_)(\d{8}_\d{6})$")
_AUDIOMOTH_COMMENT = re.compile(
    r"Recorded at (\d{2}:\d{2}:\d{2}) (\d{2}/\d{2}/\d{4}) \(UTC(?:([+-]\d{1,2})(?::?(\d{2}))?)?\)")
_HEADER_BYTES = 1 << 16  # metadata chunks are looked for in the first 64 KiB (where recorders write them)


class TimePattern:
    """A ``--time-pattern``: strptime directives found anywhere in a file name."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts, fields, i = [], set(), 0
        while i < len(pattern):
            if pattern[i] != "%":
                parts.append(re.escape(pattern[i]))
                i += 1
                continue
            code = pattern[i + 1: i + 2]
            if code == "%":
                parts.append("%")
            elif code in _DIRECTIVES:
                parts.append(f"({_DIRECTIVES[code]})")
                fields.add(code)
            else:
                raise ConfigError(f"--time-pattern {pattern!r}: unsupported directive %{code} "
                                  f"(use {' '.join('%' + c for c in _DIRECTIVES)})")
            i += 2
        if not ({"Y", "y"} & fields and ({"m", "d"} <= fields or "j" in fields)):
            raise ConfigError(f"--time-pattern {pattern!r}: needs a year (%Y or %y) and a day (%m and %d, or %j)")
        self._regex = re.compile("".join(parts))

    def search(self, name: str) -> datetime | None:
        """The time in ``name``, or None when the pattern does not occur in it (or names no valid date)."""
        found = self._regex.search(name)
        if not found:
            return None
        try:
            return _aware(datetime.strptime(found.group(0), self.pattern))
        except ValueError:
            return None


def recording_start(path: Path, pattern: TimePattern | None = None) -> datetime | None:
    """When ``path`` started recording (timezone-aware), or None when neither its name nor metadata says."""
    found = (pattern.search(path.stem) if pattern is not None else None) or _from_metadata(path) \
        or _from_recorder_name(path.stem)
    if found is None and pattern is not None:
        log.warning("%s: the file name does not match --time-pattern %r, and no other source gives its start",
                    path, pattern.pattern)
    return found


def iso_time(start: datetime, offset_seconds: float) -> str:
    """ISO 8601 time (milliseconds, with offset) ``offset_seconds`` after ``start``."""
    return (start + timedelta(seconds=offset_seconds)).isoformat(timespec="milliseconds")


def _from_recorder_name(stem: str) -> datetime | None:
    found = _RECORDER_NAME.search(stem)
    if not found:
        return None
    try:
        return _aware(datetime.strptime(found.group(1), "%Y%m%d_%H%M%S"))
    except ValueError:
        return None


def _from_metadata(path: Path) -> datetime | None:
    if path.suffix.lower() != ".wav" or not path.is_file():  # not a FIFO: opening one would block
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError:
        return None
    chunks = dict(_riff_chunks(head))
    return _from_guano(chunks.get(b"guan", b"")) or _from_audiomoth_comment(chunks.get(b"ICMT", b""))


def _riff_chunks(data: bytes):
    """``(id, payload)`` of the RIFF chunks in ``data``, descending into ``LIST`` chunks."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos: pos + 4], struct.unpack("<I", data[pos + 4: pos + 8])[0]
        payload = data[pos + 8: pos + 8 + size]
        if chunk_id == b"LIST" and payload[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(payload):
                sub_id, sub_size = payload[sub: sub + 4], struct.unpack("<I", payload[sub + 4: sub + 8])[0]
                yield sub_id, payload[sub + 8: sub + 8 + sub_size]
                sub += 8 + sub_size + (sub_size & 1)
        else:
            yield chunk_id, payload
        pos += 8 + size + (size & 1)


def _from_guano(payload: bytes) -> datetime | None:
    for line in payload.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Timestamp" and value.strip():
            try:
                return _aware(datetime.fromisoformat(value.strip()))
            except ValueError:
                return None
    return None


def _from_audiomoth_comment(payload: bytes) -> datetime | None:
    found = _AUDIOMOTH_COMMENT.search(payload.decode("latin-1"))
    if not found:
        return None
    clock, day, hours, minutes = found.groups()
    try:
        naive = datetime.strptime(f"{day} {clock}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        return None
    sign = -1 if hours and hours.startswith("-") else 1
    offset = timedelta(hours=abs(int(hours or 0)), minutes=int(minutes or 0)) * sign
    return naive.replace(tzinfo=timezone(offset))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
