"""A student/teacher cascade: the student screens every window, the tiny TFLite teacher re-scores those it flags.

In the pipeline (the object the daemon and ``birdd replay`` both run) and through ``birdd replay --cascade``:
flagged windows carry the teacher's scores for the species it knows, every other score is the student's, and
the teacher runs only for the flagged windows; a cascade that cannot run is one line naming the key.
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from test_cli_train_replay_eval import birdd
from test_distill_cli import teacher  # noqa: F401  (a fixture: a zero-shot bundle on the tiny model)
from tflite_fixtures import BIRDNET_LIKE, write_tiny_model

from daemon.audio.files import read_audio
from daemon.batch.evaluate import read_table
from daemon.batch.replay import score_file
from daemon.config import DetectionConfig, config_from_dict
from daemon.errors import BundleError, ConfigError
from daemon.model.loader import load_model
from daemon.model.windows import BirdNETGrid, WindowGrid
from daemon.pipeline.cascade import CascadeTeacher, check_cascade, load_teacher, teacher_columns
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import AudioBlock, PipelineStats, ScoringPipeline
from trainer.tflite_zero_shot import zero_shot_bundle

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]

GRID = WindowGrid.with_hop_seconds(2)
"""overlapping windows: the teacher re-scores a window from audio it has also heard for the windows before"""


def scored(model, samples, grid=GRID, block=3200, **kwargs):
    """Window results of ``samples`` pushed in blocks of ``block`` samples, then flushed."""
    pipeline = ScoringPipeline(model, grid, **kwargs)
    results = []
    for start in range(0, samples.size, block):
        results += pipeline.push(AudioBlock(start, samples[start:start + block], "x.wav"))
    return results + pipeline.flush()


@pytest.fixture(scope="module")
def soundscape(synthetic_corpus):
    """The corpus's test soundscapes back to back (40 s)."""
    return np.concatenate([read_audio(p) for p in sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))])


@pytest.mark.parametrize("block", [41_000, 1_000, 10**7])  # blocks the stage appends in place; the whole audio at once
def test_flagged_windows_carry_the_teachers_scores_and_only_they_call_it(trained_model, teacher,  # noqa: F811
                                                                          soundscape, block):
    student, tutor = load_model(trained_model), load_model(teacher)
    alone = scored(student, soundscape)
    taught = scored(tutor, soundscape)
    best = np.array([r.scores.max() for r in alone])
    threshold = float(np.median(best))
    flagged = best >= threshold
    assert 0 < flagged.sum() < flagged.size

    columns = teacher_columns(tutor, student.species)
    known = columns >= 0
    assert known.sum() == 3 and (~known).sum() == 3  # the tiny model has classes for 3 of the 6 species
    stats = PipelineStats()
    calls = tutor.backend.embedder.invocations
    detector = DetectionMaker(DetectionConfig(threshold=0.0), "t", student, StreamClock(), stats=stats)
    cascade = CascadeTeacher(tutor, threshold).stage(student, stats)
    results = scored(student, soundscape, block=block, detector=detector, stats=stats, cascade=cascade)

    assert [(r.start_sample, r.end_sample) for r in results] == [(r.start_sample, r.end_sample) for r in alone]
    assert [r.scored_by for r in results] == ["teacher" if f else "student" for f in flagged]
    assert stats.teacher_windows == flagged.sum() and stats.teacher_seconds > 0
    assert tutor.backend.embedder.invocations - calls == flagged.sum()  # one 5-s chunk per window, flagged only
    for result, own, theirs, sent in zip(results, alone, taught, flagged, strict=True):
        if sent:  # at the model's rate (no resampling) the teacher's streaming scores, to the last bit
            np.testing.assert_array_equal(result.scores[known], theirs.scores[columns[known]])
            np.testing.assert_array_equal(result.scores[~known], own.scores[~known])
        else:
            np.testing.assert_array_equal(result.scores, own.scores)
        by_teacher = {d.species_code for d in result.detections if d.model == tutor.identity}
        assert by_teacher == ({s.code for s, k in zip(student.species, known, strict=True) if k} if sent else set())
        assert all(d.model == student.identity for d in result.detections if d.species_code not in by_teacher)


def test_replay_cascade_is_the_pipelines(synthetic_corpus, trained_model, teacher, tmp_path):  # noqa: F811
    files = sorted((synthetic_corpus / "test_soundscapes").glob("*.ogg"))
    student, tutor = load_model(trained_model), load_model(teacher)
    grid = WindowGrid.with_hop_seconds(1)
    alone = np.concatenate([score_file(student, path, grid).scores for path in files])
    taught = np.concatenate([score_file(tutor, path, grid).scores for path in files])
    threshold = float(np.median(alone.max(axis=1)))
    birdd("replay", *files, "-m", trained_model, "-o", tmp_path / "cascade.csv", "--hop", "1", "-j", "2",
          "--cascade", teacher, "--screen-threshold", threshold)  # two worker processes, each loads the teacher
    both = read_table(tmp_path / "cascade.csv").values
    sent = alone.max(axis=1) >= threshold
    columns = teacher_columns(tutor, student.species)
    known, unknown = np.flatnonzero(columns >= 0), np.flatnonzero(columns < 0)
    assert 0 < sent.sum() < sent.size and both.shape == alone.shape
    same = {"rtol": 1e-3, "atol": 1e-7}  # the submission's 4 significant digits
    np.testing.assert_allclose(both[np.ix_(sent, known)], taught[np.ix_(sent, columns[known])], **same)
    np.testing.assert_allclose(both[np.ix_(sent, unknown)], alone[np.ix_(sent, unknown)], **same)
    np.testing.assert_allclose(both[~sent], alone[~sent], **same)

    failed = birdd("replay", files[0], "-m", trained_model, "-o", tmp_path / "x.csv", "--cascade", trained_model,
                   check=False)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1
    assert f"--cascade: {trained_model} is a 'stsg' bundle; the teacher must be a TFLite bundle" in failed.stderr


def test_a_cascade_that_cannot_run_is_one_line_naming_the_key(trained_model, teacher, tmp_path):  # noqa: F811
    student, tutor = load_model(trained_model), load_model(teacher)
    with pytest.raises(ConfigError, match=r"^cascade\.teacher: .* is a 'stsg' bundle; the teacher must be a TFLite"):
        check_cascade(student, student, GRID)
    with pytest.raises(ConfigError, match=r"^cascade\.teacher: a cascade runs on 5-s windows"):
        check_cascade(tutor, student, BirdNETGrid())
    with pytest.raises(BundleError, match=r"^cascade\.teacher: .*no model manifest"):
        load_teacher(str(tmp_path / "nothing"))
    for value, message in ((0, "must be within 0..1 (exclusive of 0)"), (1.5, "must be within 0..1 (exclusive of 0)"),
                           ("high", "expected float, got str")):
        with pytest.raises(ConfigError, match=rf"^cascade\.screen_threshold: {re.escape(message)}$"):
            config_from_dict({"cascade": {"screen_threshold": value}})
    with pytest.raises(ConfigError, match=r"^cascade\.teachr: unknown key$"):
        config_from_dict({"cascade": {"teachr": str(teacher)}})


def test_a_resampling_teacher_scores_a_flagged_window_as_its_stream_does(synthetic_corpus, trained_model, soundscape,
                                                                          tmp_path):
    """BirdNET's geometry (48 kHz, 3-s chunks at 0 and 2 s): the window's audio is resampled afresh, with 1 s
    before it, and its scores are the teacher's streaming ones but for the resampler's last milliseconds."""
    model = write_tiny_model(tmp_path / "tiny.tflite", BIRDNET_LIKE.chunk_samples, dim=8, n_logits=3)
    with (synthetic_corpus / "taxonomy.csv").open() as fh:
        species = list(csv.DictReader(fh))[:3]
    (tmp_path / BIRDNET_LIKE.labels_file).write_text(
        "".join(f"{s['scientific_name']}_{s['common_name']}\n" for s in species))
    tutor = load_model(zero_shot_bundle(synthetic_corpus, tmp_path / "bundle", model.path, BIRDNET_LIKE))
    student = load_model(trained_model)
    taught = scored(tutor, soundscape)
    calls = tutor.backend.embedder.invocations
    results = scored(student, soundscape, cascade=CascadeTeacher(tutor, 1e-9).stage(student))  # every window
    assert tutor.backend.embedder.invocations - calls == 2 * len(results)  # two 3-s chunks per window
    columns = teacher_columns(tutor, student.species)
    known = columns >= 0
    got = np.stack([r.scores[known] for r in results])
    expected = np.stack([r.scores[columns[known]] for r in taught])
    np.testing.assert_allclose(got, expected, atol=1e-4)
