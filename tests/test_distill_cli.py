"""``birdd distill`` as a subprocess: a tiny TFLite teacher taught into a token student on unlabelled audio."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from test_cli_train_replay_eval import birdd
from tflite_fixtures import PERCH_LIKE, write_tiny_model

import trainer.teacher
from daemon.constants import SAMPLE_RATE
from daemon.model.bundle import sha256_file
from daemon.model.windows import WindowGrid
from trainer.distill import species_floor
from trainer.distill_recipe import ALL_CLASSES_FLOOR, TeacherParams
from trainer.teacher import Teacher
from trainer.tflite_zero_shot import all_classes_bundle, zero_shot_bundle

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`")]

SMALL = ["--set", "student.tokenizer.codebook_size=32", "--set", "student.codebook_frames=5000",
         "--set", "student.kmeans_iterations=4", "--set", "student.word2vec.epochs=1",
         "--set", "student.word2vec.vector_size=8", "--set", "student.synthesis.windows_per_recording=2",
         "--set", "student.synthesis.background_windows=30", "--no-progress"]
"""a small student, so the test is quick; the teacher's targets and the student's head are the defaults"""


@pytest.fixture(scope="module")
def teacher(synthetic_corpus, tmp_path_factory):
    """A zero-shot bundle on the tiny model, whose 3 classes name 3 of the corpus's species."""
    folder = tmp_path_factory.mktemp("teacher")
    model = write_tiny_model(folder / "tiny.tflite", PERCH_LIKE.chunk_samples, dim=8, n_logits=3)
    with (synthetic_corpus / "taxonomy.csv").open() as fh:
        species = list(csv.DictReader(fh))[:3]
    (folder / PERCH_LIKE.labels_file).write_text(
        "".join(f"{s['scientific_name']}_{s['common_name']}\n" for s in species))
    return zero_shot_bundle(synthetic_corpus, folder / "bundle", model.path, PERCH_LIKE)


def distill(audio, teacher, out, *options, check=True):
    return birdd("distill", *audio, "--teacher", teacher, "-o", out, *SMALL, *options, check=check)


def manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_student_names_its_teacher_replays_and_is_deterministic_for_a_seed(synthetic_corpus, teacher, tmp_path):
    audio = [synthetic_corpus / "train_audio", synthetic_corpus / "train_soundscapes"]
    cache = ["--cache-dir", tmp_path / "cache", "--set", "teacher.augment_windows=40"]  # a few augmented windows
    first = distill(audio, teacher, tmp_path / "student", *cache)
    assert " 0 hits" in first.stderr and "peak memory (RSS)" in first.stderr
    assert "augmented windows: 40, each scored by the teacher" in first.stderr
    made = manifest(tmp_path / "student")
    assert made["distillation"]["recipe"]["augment_windows"] == 40
    data = made["training_data"]
    assert data["training_windows"] == data["calls"] * 2 + 30 + 40  # the calls' mixtures, real and augmented
    assert made["distillation"]["teacher"]["invocations"] == 26 + 40  # every file, every augmented window
    assert made["backend"] == "stsg"
    assert made["distillation"]["teacher"]["manifest_sha256"] == sha256_file(teacher / "manifest.json")
    assert made["distillation"]["teacher"]["name"] == "bundle"
    assert made["training_data"]["files"] == 24 + 2 and len(made["training_data"]["file_list_sha256"]) == 64
    assert made["distillation"]["recipe"]["species_floor"] == -1  # the default: every species of a listed teacher
    assert made["distillation"]["species_selection"] == {"species_floor": 0.0, "species": 6}
    assert made["distillation"]["recipe"]["neighbours"] == 3
    assert [s["code"] for s in made["species"]] == [s["code"] for s in manifest(teacher)["species"]]
    evidence = made["distillation"]["teacher_evidence"]
    assert evidence["found_at"] == 0.5 and set(evidence["species"]) == {s["code"] for s in made["species"]}
    assert all((v["windows"] > 0) == (v["peak"] >= 0.5) for v in evidence["species"].values())
    assert "teacher evidence:" in first.stderr
    described = birdd("info", tmp_path / "student").stdout
    assert "teacher  bundle" in described and f"of {len(made['species'])} species reach 0.5" in described
    peaks = {c: v["peak"] for c, v in evidence["species"].items() if not v["windows"]}
    never = sorted(peaks, key=peaks.get)
    assert never and f"never: {', '.join(never)}" in described  # the tiny teacher finds none; lowest peak first
    birdd("replay", synthetic_corpus / "test_soundscapes", "-m", tmp_path / "student", "-o", tmp_path / "sub.csv")
    assert len((tmp_path / "sub.csv").read_text().splitlines()) == 1 + 2 * 4  # two 20-s soundscapes

    again = distill(audio, teacher, tmp_path / "again", *cache)
    assert " 0 misses" in again.stderr  # the teacher did not run, not even on the augmented windows:
    assert manifest(tmp_path / "again")["distillation"]["teacher"]["invocations"] == 0  # they are cached too
    assert manifest(tmp_path / "again")["files"] == made["files"]  # same arrays, byte for byte
    codes = [s["code"] for s in manifest(teacher)["species"]]
    (tmp_path / "list.txt").write_text(f"# wanted\n{codes[1]}\t0.9\n{codes[0]}\n")
    distill(audio, teacher, tmp_path / "other", *cache, "--seed", "1", "--include", tmp_path / "list.txt",
            "--set", "teacher.species_floor=0.99")  # no species reaches that floor: the list still wins
    assert manifest(tmp_path / "other")["files"]["codebook.npy"] != made["files"]["codebook.npy"]
    assert [s["code"] for s in manifest(tmp_path / "other")["species"]] == [codes[1], codes[0]]


def test_the_default_learns_every_species_of_a_listed_teacher_and_floors_one_over_all_classes(teacher, tmp_path):
    everything = all_classes_bundle(tmp_path / "all", teacher.parent / "tiny.tflite", PERCH_LIKE)
    grid = WindowGrid()
    assert species_floor(TeacherParams(), Teacher(teacher, grid, None)) == 0.0
    assert species_floor(TeacherParams(), Teacher(everything, grid, None)) == ALL_CLASSES_FLOOR == 0.1
    assert species_floor(TeacherParams(species_floor=0.3), Teacher(teacher, grid, None)) == 0.3
    assert species_floor(TeacherParams(species_floor=0), Teacher(everything, grid, None)) == 0.0


def test_teacher_scores_are_cached_per_trailing_chunk_rule(teacher, tmp_path, monkeypatch):
    clip = np.full(int(2.4 * SAMPLE_RATE), 0.05, np.float32)
    first = Teacher(teacher, WindowGrid(), tmp_path)
    first.logits(clip)
    first.logits(clip)
    assert (first.cache.hits, first.cache.misses) == (1, 1)
    monkeypatch.setattr(trainer.teacher, "TRAILING_CHUNK_MIN_FILL", 0.25)
    other = Teacher(teacher, WindowGrid(), tmp_path)
    other.logits(clip)
    assert (other.cache.hits, other.cache.misses) == (0, 1)
    assert other.describe()["trailing_chunk_min_fill"] == 0.25


def test_a_teacher_made_again_shares_the_cache_and_a_changed_one_does_not(teacher, tmp_path):
    clip = np.full(int(6.0 * SAMPLE_RATE), 0.05, np.float32)
    Teacher(teacher, WindowGrid(), tmp_path / "cache").logits(clip)
    again = shutil.copytree(teacher, tmp_path / "made_again")
    made = json.loads((again / "manifest.json").read_text())
    made["created"] = "2030-01-01T00:00:00+00:00"
    (again / "manifest.json").write_text(json.dumps(made))
    remade = Teacher(again, WindowGrid(), tmp_path / "cache")
    remade.logits(clip)
    assert (remade.cache.hits, remade.cache.misses) == (1, 0)
    made["species"][0]["common_name"] += " (renamed)"
    (again / "manifest.json").write_text(json.dumps(made))
    changed = Teacher(again, WindowGrid(), tmp_path / "cache")
    changed.logits(clip)
    assert (changed.cache.hits, changed.cache.misses) == (0, 1)


def test_species_from_the_range_model_keep_what_it_does_not_know(synthetic_corpus, teacher, tmp_path):
    distill([synthetic_corpus / "train_soundscapes"], teacher, tmp_path / "student", "--no-cache",
            "--species-from-teacher-range", "--lat", "42.45", "--lon", "-76.48", "--date", "2026-05-25")
    made = manifest(tmp_path / "student")
    assert made["distillation"]["species_selection"]["range"] == {"latitude": 42.45, "longitude": -76.48,
                                                                   "week": 20, "threshold": 0.03}
    assert len(made["species"]) == 6  # made-up species: unknown to BirdNET's range model, so always allowed


def test_bad_inputs_are_one_line_errors(synthetic_corpus, teacher, trained_model, tmp_path):
    audio = [synthetic_corpus / "train_soundscapes"]
    not_tflite = distill(audio, trained_model, tmp_path / "s1", "--no-cache", check=False)
    assert not_tflite.returncode == 1
    assert not_tflite.stderr.strip().endswith("the teacher must be a TFLite bundle (`birdd train --backend "
                                              "tflite [--zero-shot]`), this one's backend is 'stsg'")
    (tmp_path / "empty").mkdir()
    empty = distill([tmp_path / "empty"], teacher, tmp_path / "s2", check=False)
    assert empty.returncode == 1 and "empty: no audio files to distil on" in empty.stderr
    short = tmp_path / "short" / "clip.wav"
    short.parent.mkdir()
    sf.write(short, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    too_short = distill([short.parent], teacher, tmp_path / "s3", check=False)
    assert too_short.returncode == 1 and "clip.wav: 2.0 s, and no file is as long as one 5-s window" in too_short.stderr
    (tmp_path / "list.txt").write_text("# wanted\nnosuchbird\n")
    unknown = distill(audio, teacher, tmp_path / "s4", "--include", tmp_path / "list.txt", check=False)
    assert unknown.returncode == 1 and "list.txt: species 'nosuchbird' is not one of the teacher's" in unknown.stderr
    bad_key = distill(audio, teacher, tmp_path / "s5", "--set", "teacher.temprature=2", check=False)
    assert bad_key.returncode == 2 and "teacher.temprature: no such recipe setting" in bad_key.stderr
    bad_value = distill(audio, teacher, tmp_path / "s7", "--set", "teacher.neighbours=-1", check=False)
    assert bad_value.returncode == 2 and "teacher.neighbours=-1: must be 0 or more" in bad_value.stderr
    no_place = distill(audio, teacher, tmp_path / "s6", "--species-from-teacher-range", check=False)
    assert no_place.returncode == 2 and "--species-from-teacher-range needs --lat and --lon" in no_place.stderr
    for result in (not_tflite, empty, too_short, unknown):
        assert "Traceback" not in result.stderr and result.stderr.count("birdd: error:") == 1
    assert not any((tmp_path / f"s{i}").exists() for i in range(1, 8))


def test_check_scores_a_student_on_held_out_recordings_and_writes_the_same_student(synthetic_corpus, teacher,
                                                                                   tmp_path):
    audio = [synthetic_corpus / "train_audio", synthetic_corpus / "train_soundscapes"]
    cache = ["--cache-dir", tmp_path / "cache"]
    distill(audio, teacher, tmp_path / "plain", *cache)
    checked = distill(audio, teacher, tmp_path / "checked", *cache, "--check", "0.5")
    assert " 0 misses" in checked.stderr  # the teacher's pass; the check student's augmented windows are its own
    check_augmented, augmented = map(int, re.findall(r"augmented windows: (\d+), each scored", checked.stderr))
    assert 0 < check_augmented < augmented < 12000  # the default, but never more than the real training windows
    made = manifest(tmp_path / "checked")
    assert made["files"] == manifest(tmp_path / "plain")["files"]  # the student written still learnt all the audio
    report = made["distillation"]["check"]
    assert (report["share"], report["held_out_files"], report["verdict"]) == (0.5, 1, 0.1)  # one of 2 soundscapes
    assert report["held_out_hours"] == round(20 / 3600, 3) and report["windows"] > 4  # its 4 windows, and mixtures
    species = report["species"]
    assert 0 < report["fidelity"] <= 1 and species and set(species) <= {s["code"] for s in made["species"]}
    assert report["fidelity"] == round(sum(v["fidelity"] for v in species.values()) / len(species), 4)
    assert "check: a student fitted on 25 recordings, scored on 1 held out" in checked.stderr
    assert f"check: fidelity to the teacher {report['fidelity']:.4f}" in checked.stderr
    described = birdd("info", tmp_path / "checked").stdout
    assert (f"check    fidelity {report['fidelity']} to the teacher on 1 held-out recording(s), "
            f"{report['windows']} windows, {len(species)} species") in described
    assert "check    " not in birdd("info", tmp_path / "plain").stdout

    again = distill(audio, teacher, tmp_path / "again", *cache, "--check", "0.5", "--seed", "1")
    assert "scored on 1 held out" in again.stderr  # the same recording for every seed
    unheard = sorted({s["code"] for s in made["species"]} - set(species))
    assert unheard, "the tiny teacher hears every species in the held-out recording: choose another corpus seed"
    (tmp_path / "list.txt").write_text(f"{unheard[0]}\n")
    silent = distill(audio, teacher, tmp_path / "silent", *cache, "--check", "0.5", "--include", tmp_path / "list.txt")
    assert manifest(tmp_path / "silent")["distillation"]["check"]["fidelity"] is None
    assert "no learnt species is heard by the teacher in some of the" in silent.stderr
    assert "check    no fidelity" in birdd("info", tmp_path / "silent").stdout


def test_check_needs_a_share_it_can_hold_out(synthetic_corpus, teacher, tmp_path):
    audio = [synthetic_corpus / "train_audio", synthetic_corpus / "train_soundscapes"]
    too_much = distill(audio, teacher, tmp_path / "s1", "--no-cache", "--check", "0.7", check=False)
    assert too_much.returncode == 2
    assert "Invalid value for '--check': 0.7 is not in the range 0<x<=0.5" in too_much.stderr
    one = sorted((synthetic_corpus / "train_soundscapes").iterdir())[0]
    alone = distill([synthetic_corpus / "train_audio", one], teacher, tmp_path / "s2", "--no-cache", "--check", "0.2",
                    check=False)
    assert alone.returncode == 1 and alone.stderr.count("birdd: error:") == 1 and "Traceback" not in alone.stderr
    assert f"{one}: the only recording of at least 5 s; holding recordings out (--check) needs 2 or more" \
        in alone.stderr
    assert "teacher scores" not in alone.stderr  # refused before the teacher ran
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()


def station_minutes(folder, minutes: int, seed: int) -> None:
    """``minutes`` one-minute recordings like an ``[archive]``'s: noise with a few chirps."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(60 * SAMPLE_RATE) / SAMPLE_RATE
    for k in range(minutes):
        audio = 0.02 * rng.standard_normal(t.size)
        for start in rng.uniform(0, 58, 6):
            chirp = (t >= start) & (t < start + 1.5)
            audio[chirp] += 0.2 * np.sin(2 * np.pi * rng.uniform(2000, 6000) * t[chirp])
        sf.write(folder / f"site_{k:03d}.wav", audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def test_memory_stays_flat_against_hours_of_audio(teacher, tmp_path):
    """Four times the audio, the same traced peak (within a few MB): the decoded audio waits on disk, the
    codebook's frames and the skip-gram's sentences are made file by file (the code before held them all)."""
    import tracemalloc

    from trainer.distill import distill as distill_student
    from trainer.distill_recipe import DistillRecipe

    recipe = DistillRecipe()
    for item in [*SMALL[1:-1:2], "teacher.max_calls=40"]:  # the calls are bounded: they saturate at both sizes
        key, _, value = item.partition("=")
        recipe = recipe.with_override(key, value)
    peaks = {}
    for minutes in (1, 4):
        station_minutes(tmp_path / f"audio_{minutes}", minutes, seed=minutes)
        tracemalloc.start()
        distill_student([tmp_path / f"audio_{minutes}"], teacher, tmp_path / f"student_{minutes}", recipe,
                        progress=False)
        peaks[minutes] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert manifest(tmp_path / f"student_{minutes}")["training_data"]["calls"] == 40
    # the code before held 2 bytes of audio and 256 of frames per 10 ms: 30.7 MB at 1 minute, 41.6 at 4 (now 27.0, 26.9)
    assert peaks[4] - peaks[1] < 4, peaks
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("birdd")) == []  # the spill is gone


def test_include_keeps_every_listed_species_whatever_the_teacher_hears(teacher, tmp_path):
    from trainer.distill import SpeciesChoice

    codes = [s["code"] for s in manifest(teacher)["species"]]
    (tmp_path / "list.txt").write_text(f"{codes[2]}\n{codes[0]}\n{codes[2]}\n")
    unheard = np.zeros(len(codes))  # the teacher's peak is 0 for every species in this audio
    chosen = SpeciesChoice(include=tmp_path / "list.txt").columns(Teacher(teacher, WindowGrid(), None), unheard, 0.99)
    assert chosen == [2, 0]
