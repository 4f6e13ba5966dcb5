"""Distillation on bench206: a token student taught by BirdNET V2.4 zero-shot on the unlabelled audio.

The student sees only the audio folders ``train_audio/`` and ``train_soundscapes/`` (linked into a folder
of their own; ``train.csv`` and the labels are never read), the teacher is ``birdd train DATA --backend
tflite --zero-shot`` (its species list comes from ``taxonomy.csv``).

  table [NAME=OPTIONS ...]   distil each configuration (extra `birdd distill` options), replay the test
                             soundscapes once per row and score them; plus the rows `teacher`,
                             `supervised` (`birdd train` on the labels), `labels` (teacher scores plus the
                             train.csv labels) and `hours=F` (a seeded share F of the audio files)
  cv [--set KEY=VALUE ...]   cross-validation on the unlabelled training audio against the teacher:
                             folds of files; (a) agreement: the student's macro ROC-AUC on held-out
                             windows against the teacher's verdicts (probability >= 0.5); (b) calls in
                             noise: held-out calls the teacher is sure of, mixed into held-out windows at
                             -5..15 dB, labelled by the teacher's verdict on the clean call; student and
                             teacher both scored

usage: python bench/distill.py [--data ../shared/bench206] [--out out/distill] table default= "hours=0.25" ...
       python bench/distill.py cv --folds 3 --set teacher.temperature=2
A student whose species list misses some of the test columns scores them 0 (an AUC of 0.5), as the
teacher scores the 4 species BirdNET does not know.
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from daemon.batch.evaluate import macro_roc_auc, read_table
from daemon.model.loader import embed_signal
from daemon.model.windows import WindowGrid
from trainer.distill import SpeciesChoice, TeacherPass, fit_student, probabilities, run_teacher, write_student
from trainer.distill_recipe import DistillRecipe
from trainer.synthesis import place_call
from trainer.train import FittedSTSG

VERDICT = 0.5
"""teacher probability that counts as "present" in the cross-validation's reference labels"""
MIXTURES_PER_CALL = 2
BACKGROUND_SHARE = 0.3
AUDIO_FOLDERS = ("train_audio", "train_soundscapes")


def run(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the child, its stderr; exits with the child's stderr on failure."""
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        err.seek(0)
        text = err.read()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{' '.join(args)} failed:\n{text}")
        return elapsed, usage.ru_maxrss / 1024, text


def test_score(birdd: str, model: Path, data: Path) -> float:
    """Macro ROC-AUC of ``model`` on the test soundscapes; test columns the model lacks score 0."""
    submission = model.parent / f"{model.name}.csv"
    run([birdd, "--log-level", "WARNING", "replay", str(data / "test_soundscapes"), "-m", str(model), "-o",
         str(submission), "--no-progress"])
    sub, truth = read_table(submission), read_table(data / "test_soundscapes_labels.csv")
    rows = {r: i for i, r in enumerate(sub.row_ids)}
    cols = {c: j for j, c in enumerate(sub.columns)}
    values = sub.values[[rows[r] for r in truth.row_ids]]
    aligned = np.stack([values[:, cols[c]] if c in cols else np.zeros(len(truth.row_ids)) for c in truth.columns],
                       axis=1)
    return macro_roc_auc(truth.values, aligned, truth.columns)[0]


def link_audio(data: Path, folder: Path, share: float = 1.0, seed: int = 0) -> list[Path]:
    """The audio folders linked under ``folder`` (a seeded ``share`` of each folder's files, linked one by one);
    returns the paths to give ``birdd distill``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in AUDIO_FOLDERS:
        target = folder / name
        if share >= 1.0:
            if not target.exists():
                target.symlink_to((data / name).resolve())
        elif not target.exists():
            files = sorted((data / name).rglob("*.ogg"))
            rng = np.random.default_rng(seed)
            keep = sorted(rng.choice(len(files), max(1, round(share * len(files))), replace=False))
            target.mkdir()
            for i in keep:
                (target / f"{name}_{i:04d}.ogg").symlink_to(files[i].resolve())
        paths.append(target)
    return paths


def teacher_bundle(birdd: str, data: Path, out: Path) -> Path:
    """BirdNET V2.4 zero-shot on taxonomy.csv (made once)."""
    teacher = out / "teacher"
    if not (teacher / "manifest.json").exists():
        run([birdd, "train", str(data), "--backend", "tflite", "--zero-shot", "-o", str(teacher)])
    return teacher


def teacher_cache_line(log_text: str) -> str:
    """The teacher score cache's hits and misses, from a distillation's log."""
    found = re.search(r"teacher score cache .*: (\d+) hits, (\d+) misses", log_text)
    return f"{found.group(1)} hits / {found.group(2)} misses" if found else "?"


def table(args: argparse.Namespace) -> None:
    birdd = str(Path(sys.executable).with_name("birdd"))
    teacher = teacher_bundle(birdd, args.data, args.out)
    cache = ["--cache-dir", str(args.out / "teacher_cache")]
    print("| row | what the model learnt from | train s | peak MB | teacher cache | macro ROC-AUC (test) |")
    print("|---|---|---|---|---|---|")
    for spec in args.configs:
        name, _, options = spec.partition("=")
        model = args.out / name.replace("=", "_")
        if name == "teacher":
            print(f"| teacher | BirdNET V2.4 zero-shot | - | - | - | {test_score(birdd, teacher, args.data):.4f} |",
                  flush=True)
            continue
        if name == "supervised":
            wall, peak, _ = run([birdd, "train", str(args.data), "-o", str(model), "--no-progress"])
            what = "train.csv labels (`birdd train`)"
            cached = "-"
        elif name == "labels":
            wall, peak, text = run([sys.executable, __file__, "--data", str(args.data), "--out", str(args.out),
                                    "labels", str(model), *shlex.split(options)])
            what, cached = "teacher scores + train.csv labels", teacher_cache_line(text)
        else:
            share = float(name.partition("_")[2] or 1) if name.startswith("hours") else 1.0
            audio = link_audio(args.data, args.out / ("audio" if share >= 1 else f"audio_{share}"), share)
            wall, peak, text = run([birdd, "distill", *map(str, audio), "--teacher", str(teacher), "-o", str(model),
                                    "--no-progress", *cache, *shlex.split(options)])
            hours = re.search(r"files \(([\d.]+) h of audio\)", text)
            what = f"teacher scores, {hours.group(1) if hours else '?'} h of audio `{options}`"
            cached = teacher_cache_line(text)
        print(f"| {name} | {what} | {wall:.0f} | {peak:.0f} | {cached} | {test_score(birdd, model, args.data):.4f} |",
              flush=True)


def with_labels(args: argparse.Namespace) -> None:
    """A student on the teacher's scores raised to 1 where train.csv labels a focal recording's species."""
    recipe = recipe_from(args.set)
    audio = link_audio(args.data, args.out / "audio")
    run_ = run_teacher(audio, args.out / "teacher", recipe.teacher, args.out / "teacher_cache", progress=False)
    species = run_.teacher.species
    columns = list(range(len(species)))
    index = {s.code: i for i, s in enumerate(species)}
    labels = {}
    with (args.data / "train.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            labels[(args.data / "train_audio" / row["filename"]).resolve()] = index[row["primary_label"]]
    scored = run_.scored(columns, recipe.teacher)
    for item in scored:
        label = labels.get(item.path.resolve())
        if label is not None:
            item.targets[:, label] = 1.0
    fitted, n_calls = fit_student(scored, recipe, progress=False)
    write_student(args.model, run_, species, fitted, n_calls, recipe, {"train_csv_labels": str(args.data)})
    logging.getLogger("bench").info("peak memory (RSS) %.0f MB",
                                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def recipe_from(settings: list[str]) -> DistillRecipe:
    recipe = DistillRecipe()
    for item in settings:
        key, _, value = item.partition("=")
        recipe = recipe.with_override(key, value)
    return recipe


def verdicts(logits: np.ndarray) -> np.ndarray:
    return (probabilities(logits) >= VERDICT).astype(np.float32)


def mixtures(run_: TeacherPass, held: list[int], grid: WindowGrid, rng: np.random.Generator
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """Held-out calls (windows with a verdict) mixed into held-out 5-s windows, and their reference labels."""
    calls, backgrounds = [], []
    for i in held:
        samples, logits = run_.decoded[i][1], run_.logits[i]
        for w, z in enumerate(logits):
            start = grid.start(w)
            window = samples[start: start + grid.length]
            if verdicts(z).any():
                calls.append((window, verdicts(z)))
            if start % grid.length == 0 and start + grid.length <= samples.size:
                backgrounds.append((window, verdicts(z)))
    windows, labels = [], []
    for call, label in calls:
        for _ in range(MIXTURES_PER_CALL):
            background, background_label = backgrounds[rng.integers(len(backgrounds))]
            mixed = background.copy()
            place_call(mixed, call, rng.uniform(-5, 15), rng)
            windows.append(mixed)
            labels.append(np.maximum(label, background_label))
    for _ in range(int(len(windows) * BACKGROUND_SHARE)):
        background, background_label = backgrounds[rng.integers(len(backgrounds))]
        windows.append(background.copy())
        labels.append(background_label)
    return windows, np.stack(labels)


def student_scores(fitted: FittedSTSG, columns: list[int], n_species: int, windows: list[np.ndarray]) -> np.ndarray:
    """The student's probabilities of 5-s windows, in the teacher's columns (0 where it has none)."""
    vectors = np.stack([embed_signal(fitted.backend, w, WindowGrid())[0].vector for w in windows])
    full = np.zeros((len(windows), n_species), np.float32)
    full[:, columns] = fitted.head().probabilities(vectors)
    return full


def cross_validate(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    recipe = recipe_from(args.set)
    audio = link_audio(args.data, args.out / "audio")
    run_ = run_teacher(audio, args.out / "teacher", recipe.teacher, args.out / "teacher_cache", progress=False)
    species = run_.teacher.species
    codes = [s.code for s in species]
    columns = SpeciesChoice().columns(run_.teacher, run_.logits, recipe.teacher.species_floor)
    scored = run_.scored(columns, recipe.teacher)
    grid = WindowGrid()
    results = []
    for fold in range(args.folds):
        started = time.perf_counter()
        held = [i for i in range(len(scored)) if i % args.folds == fold]
        fitted, _ = fit_student([s for i, s in enumerate(scored) if i % args.folds != fold], recipe, progress=False)
        student = functools.partial(student_scores, fitted, columns, len(species))
        real, real_labels = [], []
        for i in held:
            samples = run_.decoded[i][1]
            for w, z in enumerate(run_.logits[i]):
                start = run_.teacher.grid.start(w)
                if start % grid.length == 0 and start + grid.length <= samples.size:
                    real.append(samples[start: start + grid.length])
                    real_labels.append(verdicts(z))
        agreement = macro_roc_auc(np.stack(real_labels), student(real), codes)[0]
        mixed, labels = mixtures(run_, held, run_.teacher.grid, np.random.default_rng(100 + fold))
        teacher_scores = probabilities(np.stack([run_.teacher.logits(w)[0] for w in mixed]))
        in_noise = macro_roc_auc(labels, student(mixed), codes)[0]
        teacher_in_noise = macro_roc_auc(labels, teacher_scores, codes)[0]
        results.append((agreement, in_noise, teacher_in_noise))
        print(f"fold {fold}: agreement {agreement:.4f}, calls in noise {in_noise:.4f} "
              f"(teacher {teacher_in_noise:.4f}); {len(real)} real and {len(mixed)} mixed windows, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    means = [statistics.mean(r[k] for r in results) for k in range(3)]
    print(f"cv {' '.join(args.set) or 'default'}: agreement {means[0]:.4f}, calls in noise {means[1]:.4f} "
          f"(teacher {means[2]:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--out", type=Path, default=Path("out/distill"))
    commands = parser.add_subparsers(dest="command", required=True)
    table_parser = commands.add_parser("table")
    table_parser.add_argument("configs", nargs="*", default=["teacher", "default=", "labels", "hours_0.25=",
                                                              "hours_0.5="])
    cv_parser = commands.add_parser("cv")
    cv_parser.add_argument("--folds", type=int, default=3)
    cv_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    labels_parser = commands.add_parser("labels", help="(internal) the `labels` row's student")
    labels_parser.add_argument("model", type=Path)
    labels_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.command == "table":
        table(args)
    elif args.command == "cv":
        cross_validate(args)
    else:
        logging.basicConfig(level=logging.INFO)
        with_labels(args)


if __name__ == "__main__":
    main()
