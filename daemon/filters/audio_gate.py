"""The archive's side of the privacy mask: an audio sink in front of another that keeps no masked audio.

Blocks wait until the mask is decided over them (the filters hold their verdict for a margin), then go on with
the masked samples zeroed; a block masked whole is not passed on at all (the archive closes its piece there, as
at a gap: quiet hours pause it). Runs on the pipeline thread, like every audio sink; memory: the few seconds the
mask lags the audio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from daemon.constants import SAMPLE_RATE
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.pipeline.scoring import AudioBlock
from daemon.sinks.base import AudioSink


class MaskedAudio:
    """``put_audio`` / ``end_audio`` of ``sink``, behind ``mask``; withheld seconds counted in ``stats``."""

    def __init__(self, sink: AudioSink, mask: PrivacyMask, stats: FilterStats) -> None:
        self._sink = sink
        self._mask = mask
        self._stats = stats
        self._waiting: deque[AudioBlock] = deque()

    def put_audio(self, block: AudioBlock) -> None:
        """Queue a block; pass on those the mask is decided over."""
        self._waiting.append(block)
        while self._waiting and self._mask.decided_until >= self._waiting[0].end_sample:
            self._pass(self._waiting.popleft())

    def end_audio(self) -> None:
        """The stream ended (the filters have flushed): pass on what waits, then end the sink's audio."""
        while self._waiting:
            self._pass(self._waiting.popleft())
        self._sink.end_audio()

    def _pass(self, block: AudioBlock) -> None:
        if self._mask.covers(block.start_sample, block.end_sample):
            self._stats.audio_withheld_s += block.samples.size / SAMPLE_RATE
            return
        if self._mask.touches(block.start_sample, block.end_sample):
            samples = block.samples.copy()
            self._stats.audio_withheld_s += self._mask.silence(block.start_sample, samples) / SAMPLE_RATE
            block = replace(block, samples=samples)
        self._sink.put_audio(block)
