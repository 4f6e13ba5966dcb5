"""The daemon's path (ring reads split by input, gaps, random block sizes) scores as replay scores each piece."""

import numpy as np

from daemon.batch.replay import score_samples
from daemon.config import DetectionConfig
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker, DetectionPolicy
from daemon.pipeline.scoring import ScoringPipeline
from daemon.service.workers import blocks_by_source


def test_segments_gaps_and_sources_equal_separate_replays(trained_model, rng):
    model = load_model(trained_model)
    grid = WindowGrid()
    pieces = [("a.wav", 0, 13.3), ("b.wav", int(13.3 * SAMPLE_RATE), 7.9), ("a.wav", int(30 * SAMPLE_RATE), 11.0)]
    audio = {start: (0.05 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
             for _, start, seconds in pieces}
    names = {start: name for name, start, _ in pieces}

    def source_at(sample: int) -> str:
        return names[max(start for start in names if start <= sample)]

    clock = StreamClock(1_700_000_000.0)
    pipeline = ScoringPipeline(model, grid, DetectionMaker(DetectionConfig(threshold=0.2), "t", model, clock))
    results = []
    for start, samples in audio.items():  # a ring read never spans a gap; it may span a change of file
        offset = 0
        while offset < samples.size:
            n = int(rng.integers(1, 9000))
            results += [r for block in blocks_by_source(start + offset, samples[offset:offset + n], source_at, 0.0)
                        for r in pipeline.push(block)]
            offset += n
    results += pipeline.flush()

    assert pipeline.stats.gaps == 1
    policy = DetectionPolicy(DetectionConfig(threshold=0.2), model.species)
    for name, start, _ in pieces:
        mine = [r for r in results if r.segment_start == start]
        expected = score_samples(model, audio[start], name, grid)
        assert {r.source for r in mine} == {name}
        assert [r.start_sample - start for r in mine] == expected.starts.tolist()
        assert [r.end_sample - start for r in mine] == expected.ends.tolist()
        np.testing.assert_array_equal(np.stack([r.scores for r in mine]), expected.scores)
        assert [[d.species_code for d in r.detections] for r in mine] == [
            [model.species[j].code for j, _ in policy.select(s)] for s in expected.scores]
    assert all(d.start < d.end for r in results for d in r.detections)
