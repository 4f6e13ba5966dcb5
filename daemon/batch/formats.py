"""Output formats of ``birdd replay``: BirdCLEF submission, detections CSV, BirdNET-Analyzer CSV, Raven selections,
Audacity labels.

Times are derived from sample indices here, at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from daemon.batch.recording_time import iso_time
from daemon.constants import SAMPLE_RATE
from daemon.filters.stats import FilterStats
from daemon.model.loader import Species

FORMATS = ("submission", "detections", "birdnet", "raven", "audacity")


@dataclass(frozen=True)
class FileScores:
    """Window scores of one file: ``starts``/``ends`` in samples, ``scores`` ``(n_windows, n_species)``."""

    path: Path
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    recording_start: datetime | None = None
    """when the recording started (see :mod:`daemon.batch.recording_time`), if known"""
    in_range: np.ndarray | None = None
    """bool per species: what the range filter expects (the others are never listed); None = every species"""
    seconds: float | None = None
    """the whole recording's length (from its header), if known"""
    filter_stats: FilterStats | None = None
    """with ``[filters]`` (:mod:`daemon.batch.filtering`): what the filters did in this file"""


def for_output(result: FileScores, in_range: np.ndarray | None, recording_start: datetime | None,
               seconds: float | None = None) -> FileScores:
    """``result`` as the writers take it: species out of range (``in_range`` False) scored 0 and never listed,
    its recording's start and length."""
    if in_range is not None:
        result = replace(result, scores=np.where(in_range, result.scores, np.float32(0)), in_range=in_range)
    return replace(result, recording_start=recording_start, seconds=seconds)


def row_id(path: Path, end_sample: int) -> str:
    """BirdCLEF row id: ``<file stem>_<window end second>``."""
    return f"{path.stem}_{round(end_sample / SAMPLE_RATE)}"


def submission_header(species: list[Species]) -> str:
    """Header line of a submission CSV."""
    return ",".join(["row_id", *(s.code for s in species)]) + "\n"


def submission_rows(result: FileScores) -> str:
    """One CSV line per window: row id and every species' probability."""
    line = f"%s,{','.join(['%.4g'] * result.scores.shape[1])}\n"  # one %-format a row: "%.4g" is "{:.4g}"
    return "".join(line % (row_id(result.path, int(end)), *scores.tolist())
                   for end, scores in zip(result.ends, result.scores, strict=True))


def detections(result: FileScores, species: list[Species], min_conf: float) -> Iterable[tuple]:
    """``(start_s, end_s, species, confidence)`` for every score at or above ``min_conf`` (compared in float64: on
    the BirdNET grid, :func:`daemon.pipeline.policy.lowest_listed` makes it "above"), best first per window. A NaN
    score (a detection replay's filters dropped) is never listed.

    Non-bird classes (``Species.non_bird``) and species out of range (``result.in_range``) are never listed,
    like the daemon never publishes them.
    """
    for start, end, scores in zip(result.starts, result.ends, result.scores, strict=True):
        for j in np.argsort(-scores):
            if not float(scores[j]) >= min_conf:  # NaN sorts last
                break
            if not species[j].non_bird and (result.in_range is None or result.in_range[j]):
                yield start / SAMPLE_RATE, end / SAMPLE_RATE, species[j], float(scores[j])


def detection_rows(result: FileScores, species: list[Species], min_conf: float, with_times: bool = False) -> str:
    """Detections table lines: ``start_s,end_s,file,species_code,common_name,confidence`` and, ``with_times``,
    ``start_time,end_time`` (ISO 8601; empty when the recording's start is unknown)."""
    return "".join(f"{a:.1f},{b:.1f},{_csv(str(result.path))},{s.code},{_csv(s.common_name)},{c:.4f}"
                   + (",{},{}".format(*absolute_times(result, a, b)) if with_times else "") + "\n"
                   for a, b, s, c in detections(result, species, min_conf))


BIRDNET_CSV_HEADER = "Start (s),End (s),Scientific name,Common name,Confidence,File\n"
"""BirdNET-Analyzer's ``--rtype csv`` columns (birdnetlib's ``start_time``, ``end_time``, ``scientific_name``,
``common_name``, ``confidence``)"""


def birdnet_rows(result: FileScores, species: list[Species], min_conf: float) -> str:
    """BirdNET-Analyzer CSV lines: ``start,end,scientific name,common name,confidence,file``."""
    return "".join(f"{a:.1f},{b:.1f},{_csv(s.scientific_name)},{_csv(s.common_name)},{c:.4f},{_csv(str(result.path))}\n"
                   for a, b, s, c in detections(result, species, min_conf))


def absolute_times(result: FileScores, start_s: float, end_s: float) -> tuple[str, str]:
    """ISO 8601 times of a span given in seconds into the recording ("" when its start is unknown)."""
    if result.recording_start is None:
        return "", ""
    return iso_time(result.recording_start, start_s), iso_time(result.recording_start, end_s)


DETECTIONS_COLUMNS = ("start_s", "end_s", "file", "species_code", "common_name", "confidence")
TIME_COLUMNS = ("start_time", "end_time")
"""absolute times of a detection, added to the detections table when some recording's start is known"""
DETECTIONS_HEADER = ",".join(DETECTIONS_COLUMNS) + "\n"
DETECTIONS_HEADER_WITH_TIMES = ",".join(DETECTIONS_COLUMNS + TIME_COLUMNS) + "\n"
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Species Code", "Common Name", "Confidence", "Begin Path", "File Offset (s)")
RAVEN_CLOCK_COLUMNS = ("Begin Date", "Begin Clock Time", "End Date", "End Clock Time")
"""Raven's own date and clock-time measurements (the recording's local time, as Raven shows it with "Real Clock
Times"), added when some recording's start is known; the offset from UTC is in the detections table's times"""


def raven_header(with_times: bool) -> str:
    """Header line of a Raven selection table."""
    return "\t".join(RAVEN_COLUMNS + (RAVEN_CLOCK_COLUMNS if with_times else ())) + "\n"


class RavenTable:
    """A Raven Pro selection table over all files (``Begin Path`` and ``File Offset`` name the place).

    Raven lays the files of a table end to end, each as long as its audio: a file's selections are offset by
    the lengths of the files before it, and a trailing window's selection ends with its file. (A file whose
    length is not known is taken to end with its last window.)
    """

    def __init__(self, min_conf: float, with_times: bool = False, high_freq: float = SAMPLE_RATE / 2) -> None:
        self.min_conf = min_conf
        self.with_times = with_times
        self.high_freq = high_freq
        self.selection = 0
        self.offset = 0.0  # where the current file starts on Raven's timeline (seconds)
        self._length: float | None = None  # of the current file, when known
        self._last_end = 0.0  # of the current file's windows so far (seconds)

    def rows(self, result: FileScores, species: list[Species]) -> str:
        """Selection lines of one file or segment (with ``with_times``, its clock times; empty when its start is
        unknown)."""
        self._length = self._length or result.seconds
        if len(result.ends):
            self._last_end = float(result.ends[-1]) / SAMPLE_RATE
        lines = []
        for a, b, s, c in detections(result, species, self.min_conf):
            self.selection += 1
            b = min(b, self._length or b)
            clock = "\t" + "\t".join(raven_clock(result, a) + raven_clock(result, b)) if self.with_times else ""
            lines.append(f"{self.selection}\tSpectrogram 1\t1\t{self.offset + a:.3f}\t{self.offset + b:.3f}\t0\t"
                         f"{self.high_freq:.0f}\t{s.code}\t{s.common_name}\t{c:.4f}\t{result.path}\t{a:.3f}"
                         f"{clock}\n")
        return "".join(lines)

    def end_file(self) -> None:
        """The next file starts where this one's audio ends (a file of which nothing was scored takes no time)."""
        self.offset += self._length or self._last_end
        self._length, self._last_end = None, 0.0


def raven_clock(result: FileScores, offset_seconds: float) -> tuple[str, str]:
    """Raven's date (``2024/05/01``) and clock time (``05:30:05.000``) ``offset_seconds`` into the recording, in
    the recording's local time ("" when its start is unknown)."""
    if result.recording_start is None:
        return "", ""
    moment = result.recording_start + timedelta(seconds=offset_seconds)
    return moment.strftime("%Y/%m/%d"), moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def audacity_labels(result: FileScores, species: list[Species], min_conf: float) -> str:
    """Audacity label track lines: ``start<TAB>end<TAB>Common name (code) confidence``."""
    return "".join(f"{a:.3f}\t{b:.3f}\t{s.common_name} ({s.code}) {c:.3f}\n"
                   for a, b, s, c in detections(result, species, min_conf))


def _csv(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(ch in text for ch in ',"\n') else text
