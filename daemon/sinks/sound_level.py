"""The sound-level audio sink: a meter over the blocks the pipeline reads, its reports to MQTT, Prometheus, the web.

:class:`SoundLevelSink` is an :class:`~daemon.sinks.base.AudioSink` (no thread of its own: the pipeline
thread hands it every block, the meter works on one-second frames, one FFT a second). Each report becomes
one payload, BirdNET-Go's sound-level shape plus the LAeq, handed to every output: the MQTT publisher
(``<prefix>/soundlevel``, QoS 0, not retained), the Prometheus gauges and the latest-levels file the web
reads (:mod:`daemon.store.sound_levels`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from daemon.pipeline.detection import StreamClock, iso_utc
from daemon.pipeline.scoring import AudioBlock
from daemon.pipeline.sound_level import EXACT_BANDS_HZ, NOMINAL_BANDS_HZ, SoundLevel, SoundLevelMeter, band_key

log = logging.getLogger(__name__)

LevelOutput = Callable[[dict[str, Any]], None]
"""takes one sound-level payload; must return at once (it runs on the pipeline thread)"""


def sound_level_payload(level: SoundLevel, station: str, source: str, clock: StreamClock,
                        calibration_db: float) -> dict[str, Any]:
    """The JSON of one report: BirdNET-Go's ``octave_bands`` (keyed ``"1.0_kHz"``) plus ``laeq_db``."""
    return {
        "station": station, "source": source, "name": source,
        "timestamp": iso_utc(clock.at(level.end_sample)), "start": iso_utc(clock.at(level.start_sample)),
        "duration_seconds": level.seconds, "laeq_db": round(level.laeq_db, 2), "calibration_db": calibration_db,
        "octave_bands": {
            band_key(nominal): {"center_frequency_hz": nominal, "exact_center_frequency_hz": round(exact, 2),
                                "min_db": round(low, 2), "max_db": round(high, 2), "mean_db": round(mean, 2)}
            for nominal, exact, mean, low, high in zip(NOMINAL_BANDS_HZ, EXACT_BANDS_HZ, level.bands_mean_db,
                                                       level.bands_min_db, level.bands_max_db, strict=True)},
    }


class SoundLevelSink:
    """Audio sink: meters the stream of ``source`` and hands each report's payload to ``outputs``."""

    def __init__(self, meter: SoundLevelMeter, station: str, source: str, clock: StreamClock,
                 calibration_db: float, outputs: list[LevelOutput]) -> None:
        self._meter = meter
        self._station = station
        self._source = source
        self._clock = clock
        self._calibration = calibration_db
        self._outputs = outputs
        self.reports = 0
        """reports made so far"""

    def put_audio(self, block: AudioBlock) -> None:
        """Meter one block; publish the intervals it completes."""
        self._publish(self._meter.push(block.start_sample, block.samples))

    def end_audio(self) -> None:
        """Publish the last, unfinished interval (if it has a whole second)."""
        self._publish(self._meter.flush())

    def _publish(self, levels: list[SoundLevel]) -> None:
        for level in levels:
            self.reports += 1
            payload = sound_level_payload(level, self._station, self._source, self._clock, self._calibration)
            for output in self._outputs:
                try:
                    output(payload)
                except Exception:  # one output failing never stops the others, nor the pipeline
                    log.exception("sound level output %r failed", output)
