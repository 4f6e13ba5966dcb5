"""The filters of ``[filters]`` in one stage between the detection maker and the sinks: a plain object, no threads.

Order: quiet hours (no detections), noise, privacy, confirmation; each holds window results only as long as its
evidence needs (a margin, a confirmation span), and results leave in stream order. The privacy filter also keeps
the :class:`~daemon.filters.mask.PrivacyMask` that the clips and the archive consult, as does ``quiet_mode =
"audio"``. Built by :func:`build_filters`; ``None`` when every filter is off (the pipeline is then unchanged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from daemon.config import MAX_FILTER_MARGIN_S, FiltersConfig
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.errors import ConfigError
from daemon.filters.confirm import Confirmation
from daemon.filters.mask import PrivacyMask
from daemon.filters.quiet import QuietHours
from daemon.filters.spans import SpanFilter
from daemon.filters.stats import FilterStats
from daemon.filters.voice import SileroVoice, vad_installed
from daemon.model.loader import Species
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.scoring import AudioBlock, WindowResult
from daemon.pipeline.species_list import species_index

log = logging.getLogger(__name__)

NEVER = 2**62
"""the stream sample a detector that is not in use has judged up to"""


def _columns(key: str, entries: list[str], species: list[Species]) -> np.ndarray:
    found = [species_index(e, species) for e in entries]
    missing = [e for e, j in zip(entries, found, strict=True) if j is None]
    if missing and len(missing) < len(entries):
        log.info("%s: not in this bundle: %s", key, ", ".join(missing))
    return np.array([j for j in found if j is not None], dtype=np.int64)


def _codes(key: str, entries: list[str], species: list[Species]) -> frozenset[str]:
    columns = _columns(key, entries, species)
    if entries and not columns.size:
        raise ConfigError(f"{key}: none of {', '.join(entries[:5])} is in the model")
    return frozenset(species[j].code for j in columns)


def filters_delay_s(config: FiltersConfig) -> float:
    """The longest a window result may be held (seconds): ring capacity the clips need beyond it."""
    delay = 0.0
    if config.privacy:
        delay += config.privacy_margin_s + WINDOW_SECONDS
    if config.noise:
        delay += config.noise_margin_s + WINDOW_SECONDS
    if config.confirm:
        delay += config.confirm_within_s
    return min(delay, 3 * (MAX_FILTER_MARGIN_S + WINDOW_SECONDS))


def needs_mask(filters: FiltersConfig) -> bool:
    """Whether a source's clips and archive must consult a privacy mask under ``filters`` (its own [filters])."""
    return filters.privacy or (bool(filters.quiet_hours) and filters.quiet_mode == "audio")


class FilterChain:
    """Window results in, filtered window results out (later, in order); audio blocks feed the VAD and quiet hours."""

    def __init__(self, config: FiltersConfig, species: list[Species], clock: StreamClock, stats: FilterStats,
                 mask: PrivacyMask | None = None, threads: int = 1) -> None:
        self._clock = clock
        self.stats = stats
        self._mask = mask
        self._quiet = QuietHours(config.quiet_hours, config.quiet_timezone)
        self._quiet_audio = bool(self._quiet) and config.quiet_mode == "audio"
        self._noise_columns = _columns("filters.noise_classes", config.noise_classes, species) if config.noise \
            else np.zeros(0, np.int64)
        self._noise_threshold = config.noise_threshold
        self._noise = SpanFilter(round(config.noise_margin_s * SAMPLE_RATE),
                                 remember=round(config.noise_remember_s * SAMPLE_RATE),
                                 codes=_codes("filters.noise_species", config.noise_species, species) or None,
                                 on_drop=self._count("noise_dropped")) if config.noise else None
        self._privacy_columns = np.zeros(0, np.int64)
        self._voice: SileroVoice | None = None
        self._privacy: SpanFilter | None = None
        self._decided = {"classes": NEVER, "vad": NEVER}  # how far each privacy detector has judged the stream
        if config.privacy:
            columns = _columns("filters.privacy_classes", config.privacy_classes, species)
            detector = config.privacy_detector
            if detector == "auto":
                detector = "both" if columns.size and vad_installed() else ("classes" if columns.size else "vad")
            if detector in ("classes", "both") and not columns.size:
                raise ConfigError(f'filters.privacy_detector: "{detector}", but none of filters.privacy_classes '
                                  'is in the model (use "vad" or "auto")')
            if detector in ("classes", "both"):
                self._privacy_columns, self._decided["classes"] = columns, 0
            if detector in ("vad", "both"):
                self._voice, self._decided["vad"] = SileroVoice(config.privacy_vad_threshold, threads), 0
            self._privacy = SpanFilter(round(config.privacy_margin_s * SAMPLE_RATE),
                                       on_drop=self._count("privacy_dropped"))
        self._privacy_threshold = config.privacy_threshold
        self._confirm = Confirmation(config.confirm_windows, round(config.confirm_within_s * SAMPLE_RATE),
                                     config.confirm_high_confidence,
                                     _codes("filters.confirm_exempt", config.confirm_exempt, species),
                                     stats) if config.confirm else None
        self._heard_end = 0

    @property
    def privacy_detector(self) -> str:
        """"classes", "vad", "both" or "" (privacy off)."""
        judged = [name for name, sample in self._decided.items() if sample != NEVER]
        return "both" if len(judged) == 2 else "".join(judged)

    def _count(self, name: str) -> Callable[[int], None]:
        def add(n: int) -> None:
            setattr(self.stats, name, getattr(self.stats, name) + n)
        return add

    def hear(self, block: AudioBlock) -> None:
        """One block of audio, before the windows it completes are pushed."""
        self._heard_end = block.end_sample
        if self._quiet and self._quiet.at(self._clock.at(block.start_sample)):
            self.stats.quiet_audio_s += block.samples.size / SAMPLE_RATE
            if self._quiet_audio and self._mask is not None:
                self._mask.add(block.start_sample, block.end_sample)
        if self._voice is not None:
            for start, end in self._voice.push(block.start_sample, block.samples):
                self.stats.privacy_voices += 1
                self._mask_span(self._privacy.evidence(start, end))
            self._judged("vad", self._voice.judged_until)
        elif self._privacy is None:
            self._decide_mask(block.end_sample)

    def push(self, results: list[WindowResult]) -> list[WindowResult]:
        """Scored windows in stream order -> the windows whose detections are decided, filtered, in order."""
        for result in results:
            self._observe(result)
        results = [self._quiet_filtered(r) for r in results]
        return self._through(results, end=False)

    def flush(self) -> list[WindowResult]:
        """End of a segment: release everything held with the evidence there is."""
        if self._mask is not None:
            self._mask.decide(self._heard_end)
        return self._through([], end=True)

    def _through(self, results: list[WindowResult], end: bool) -> list[WindowResult]:
        for stage in (self._noise, self._privacy, self._confirm):
            if stage is not None:
                results = stage.push(results) + (stage.flush() if end else [])
        return results

    def _observe(self, result: WindowResult) -> None:
        if self._noise is not None:
            if self._noise_columns.size and result.scores[self._noise_columns].max() >= self._noise_threshold:
                self.stats.noise_windows += 1
                self._noise.evidence(result.start_sample, result.end_sample)
            self._noise.decide(result.start_sample)
        if self._privacy_columns.size:
            if result.scores[self._privacy_columns].max() >= self._privacy_threshold:
                self.stats.privacy_voices += 1
                self._mask_span(self._privacy.evidence(result.start_sample, result.end_sample))
            self._judged("classes", result.start_sample)

    def _judged(self, detector: str, sample: int) -> None:
        """``detector`` will find no voice starting before ``sample`` any more: so far the privacy filter is decided
        (as far as the slower of its detectors)."""
        self._decided[detector] = max(self._decided[detector], sample)
        self._privacy.decide(min(self._decided.values()))
        self._decide_mask(self._privacy.decided_until)

    def _quiet_filtered(self, result: WindowResult) -> WindowResult:
        if not result.detections or self._quiet_audio or not self._quiet \
                or not self._quiet.at(self._clock.at(result.end_sample)):
            return result
        self.stats.quiet_dropped += len(result.detections)
        return replace(result, detections=())

    def _mask_span(self, span: tuple[int, int]) -> None:
        if self._mask is not None:
            self._mask.add(*span)

    def _decide_mask(self, sample: int) -> None:
        if self._mask is not None:
            self._mask.decide(sample)


def build_filters(config: FiltersConfig, species: list[Species], clock: StreamClock, stats: FilterStats,
                  mask: PrivacyMask | None, threads: int = 1) -> FilterChain | None:
    """The chain of the filters switched on, or None when none is."""
    if not (config.privacy or config.noise or config.confirm or config.quiet_hours):
        return None
    return FilterChain(config, species, clock, stats, mask, threads)
