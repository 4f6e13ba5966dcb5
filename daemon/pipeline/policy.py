"""Window scores -> detections (named, timed, stable ids): thresholds, include and exclude lists, non-bird classes.

A species marked ``non_bird`` in the bundle (BirdNET's "Human vocal", "Dog", "Siren", ...) is scored but
never a detection. A range mask (:class:`daemon.model.range_filter.StationRange`) removes, window by
window, the species not expected at the station in the current week.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from daemon.config import DetectionConfig
from daemon.errors import ConfigError
from daemon.model.loader import Model, Species
from daemon.model.range_filter import StationRange
from daemon.pipeline.detection import Detection, StreamClock, iso_utc, make_detection_id
from daemon.pipeline.species_list import read_species_list, species_index

if TYPE_CHECKING:
    from daemon.pipeline.cascade import Screening
    from daemon.pipeline.scoring import PipelineStats

log = logging.getLogger(__name__)


def lowest_listed(threshold: float, strictly_above: bool = False) -> float:
    """The lowest confidence listed at ``threshold`` (float64; float32 scores are compared exactly): ``threshold``
    itself, or, with ``strictly_above`` (BirdNET's rule, :attr:`daemon.model.windows.BirdNETGrid.strictly_above`),
    the next float64 above it, so that a tie is not listed."""
    return math.nextafter(threshold, math.inf) if strictly_above else threshold


class DetectionPolicy:
    """Which species of a scored window are reported: those at or above their threshold, or, ``strictly_above``
    (the BirdNET grid), above it."""

    def __init__(self, config: DetectionConfig, species: list[Species], strictly_above: bool = False) -> None:
        self.thresholds = np.full(len(species), config.threshold, dtype=np.float64)
        unknown = []
        for entry, value in config.species_thresholds.items():  # by code, scientific name or BirdNET label
            j = species_index(entry, species)
            if j is None:
                unknown.append(entry)
            else:
                self.thresholds[j] = value
        if unknown:
            raise ConfigError(f"detection.species_thresholds: species not in the model: {', '.join(unknown[:5])}")
        allowed = np.array([not s.non_bird for s in species], dtype=bool)
        include = _columns("detection.include", config.include, species)
        if include is not None:
            allowed &= np.isin(np.arange(len(species)), include)
        exclude = _columns("detection.exclude", config.exclude, species)
        if exclude:
            allowed[exclude] = False
        self.thresholds[~allowed] = np.inf
        if strictly_above:  # the next float64 above each threshold, as lowest_listed: a tie is not listed
            self.thresholds = np.nextafter(self.thresholds, np.inf)

    def restrict(self, allowed: np.ndarray) -> None:
        """Never report the species where ``allowed`` (bool per species) is False (a fixed range mask)."""
        self.thresholds[~allowed] = np.inf

    def select(self, scores: np.ndarray, in_range: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(species index, confidence)`` pairs that pass their threshold, best first.

        ``in_range`` (bool per species) leaves out the species a range filter does not expect.
        """
        passed = scores >= self.thresholds
        if in_range is not None:
            passed &= in_range
        hits = np.flatnonzero(passed)
        return [(int(j), float(scores[j])) for j in hits[np.argsort(-scores[hits])]]

    def removed_by_range(self, scores: np.ndarray, in_range: np.ndarray) -> bool:
        """Whether the window's best species passing its threshold is one the range filter removes."""
        passed = np.flatnonzero(scores >= self.thresholds)
        return passed.size > 0 and not in_range[passed[np.argmax(scores[passed])]]


def _columns(key: str, entries: list[str] | str, species: list[Species]) -> list[int] | None:
    """Columns named by a config list (each must be in the model) or a species list file (others skipped)."""
    if isinstance(entries, str):
        found = [species_index(e, species) for e in read_species_list(entries, key)]
        columns = [j for j in found if j is not None]
        if not columns:
            raise ConfigError(f"{key}: {entries}: none of its {len(found)} species is in the model")
        if len(columns) < len(found):
            log.info("%s: %d of the %d species of %s are not in the model", key, len(found) - len(columns),
                     len(found), entries)
        return columns
    if not entries:
        return None
    found = [species_index(e, species) for e in entries]
    unknown = [e for e, j in zip(entries, found, strict=True) if j is None]
    if unknown:
        raise ConfigError(f"{key}: species code(s) not in the model: {', '.join(unknown[:5])}")
    return found


class DetectionMaker:
    """Window scores -> :class:`Detection` s: the policy's choice, named, timed and given a stable id.

    With ``station_range``, a species is a detection only if BirdNET's range model expects it in the week
    of the window's end (local date, by ``clock``): the week's list is computed on its first window and
    kept, so a daemon running for months follows the seasons. ``stats.windows_out_of_range`` counts the
    windows whose best species passing its threshold the filter removed. ``strictly_above``: BirdNET's rule (the
    grid's :attr:`~daemon.model.windows.BirdNETGrid.strictly_above`).
    """

    def __init__(self, config: DetectionConfig, station: str, model: Model, clock: StreamClock,
                 station_range: StationRange | None = None, stats: PipelineStats | None = None, *,
                 source_name: str = "", strictly_above: bool = False) -> None:
        self.policy = DetectionPolicy(config, model.species, strictly_above)
        self._station = station
        self._source_name = source_name
        self._species = model.species
        self._identity = model.identity
        self._clock = clock
        self._range = station_range
        self._stats = stats

    def detect(self, source: str, start_sample: int, end_sample: int, scores: np.ndarray,
               screening: Screening | None = None) -> tuple[Detection, ...]:
        """The detections of one window (best first); empty when nothing passes its threshold. With a cascade's
        ``screening``, a detection whose score is the teacher's names the teacher as its model."""
        in_range = None if self._range is None else self._range.at(self._clock.at(end_sample))
        if in_range is not None and self._stats is not None and self.policy.removed_by_range(scores, in_range):
            self._stats.windows_out_of_range += 1
        found = []
        for j, confidence in self.policy.select(scores, in_range):
            species = self._species[j]
            found.append(Detection(
                detection_id=make_detection_id(self._station, source, self._clock.epoch, end_sample, species.code,
                                               self._source_name),
                station=self._station, source=source, start=iso_utc(self._clock.at(start_sample)),
                end=iso_utc(self._clock.at(end_sample)), species_code=species.code,
                common_name=species.common_name, scientific_name=species.scientific_name,
                confidence=round(confidence, 4), source_name=self._source_name,
                model=screening.identity if screening is not None and screening.teacher_columns[j] else self._identity))
        return tuple(found)
