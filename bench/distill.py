"""Distillation on bench206: a token student taught by BirdNET V2.4 zero-shot on the unlabelled audio.

The student sees only the audio folders ``train_audio/`` and ``train_soundscapes/`` (linked into a folder
of their own; ``train.csv`` and the labels are never read), the teacher is ``birdd train DATA --backend
tflite --zero-shot`` (its species list comes from ``taxonomy.csv``).

  table [NAME=OPTIONS ...]   distil each configuration (extra `birdd distill` options), replay the test
                             soundscapes once per row and score them; plus the rows `teacher`,
                             `supervised` (`birdd train` on the labels), `labels` (teacher scores plus the
                             train.csv labels), `hours_F=OPTIONS` (a seeded share F of the audio files)
                             and `copies_N=OPTIONS` (the audio N times over, in N folders: the memory and
                             time of distilling a longer archive, e.g. 8 copies ~ a week at 5 min/hour)
  cv [--set KEY=VALUE ...]   cross-validation on the unlabelled training audio against the teacher: folds
                             of files, a whole student per fold, scored by its fidelity: the macro ROC-AUC
                             of its scores against the teacher's verdicts (probability >= 0.1) on held-out
                             test-like windows (real held-out windows, and held-out calls mixed into them at
                             -5..15 dB, each as the teacher scores it)
  heads --head LOSS:L2 ...   the student's features once (fitted on all the audio, label-free), then each
                             head: 2-fold fidelity as above (the head fitted on one fold's training windows)
                             and, fitted on all windows, the test score (once per head)
  cache-augmented --augment N --files all|0|1
                             the teacher's scores of `heads --augment N`'s augmented windows of those files into
                             the cache (one process per set, beside `heads`)
  check-species MODEL        a `--check` student (MODEL.csv and teacher.csv written by `table`): Spearman
                             correlations of the check's per-species fidelity with the student's per-species
                             test ROC-AUC and with its gap to the teacher
  evidence MODEL ...         the test macro ROC-AUC of each model's submission (MODEL.csv, written by
                             `table`) split by how much the teacher finds each species in the unlabelled
                             audio: its highest probability in any window, at or above 0.5 or below
  station [OPTIONS]          a station's own audio: 2 folds of the test soundscapes (alternate files); a
                             student distilled on the training audio plus one fold's soundscapes (unlabelled,
                             linked into a folder of their own; OPTIONS as a `table` row's) is scored on the
                             other fold, beside the teacher and the `table` students named by --compare (their
                             submissions MODEL.csv) on the same windows; the labels are read only to score

usage: python bench/distill.py [--data ../shared/bench206] [--out out/distill] table default= "hours=0.25" ...
       python bench/distill.py cv --folds 2 --set teacher.temperature=2
       python bench/distill.py heads --head squares:3 --head logistic:0.01 --set teacher.species_floor=0
A student whose species list misses some of the test columns scores them 0 (an AUC of 0.5), as the
teacher scores the 4 species BirdNET does not know.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
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

from daemon.audio.files import read_audio
from daemon.batch.evaluate import Table, macro_roc_auc, read_table
from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from daemon.model.head import LinearHead
from daemon.model.loader import embed_signal
from daemon.model.windows import WindowGrid
from trainer.distill import (
    FOUND,
    ScoredAudio,
    SpeciesChoice,
    TeacherPass,
    audio_peaks,
    augmentation,
    fit_student,
    run_teacher,
    species_floor,
    student_inputs,
    teacher_evidence,
    write_student,
)
from trainer.distill_augment import Scorer
from trainer.distill_check import fidelity, held_out_fidelity, held_out_vectors, held_out_windows
from trainer.distill_recipe import DistillRecipe
from trainer.head_fit import least_squares_targets
from trainer.train import WindowSource, fit_stsg_features, window_features

AUDIO_FOLDERS = ("train_audio", "train_soundscapes")
STATION_AUDIO = Path("../shared/bench206-station/station_audio")
"""the station protocol's own soundscapes (150 unlabelled minutes, no focal clips), heard with bench206's
``train_soundscapes/``"""


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
    return aligned_auc(truth, sub.columns, rows_of(sub, truth))


def rows_of(sub: Table, truth: Table) -> np.ndarray:
    """A submission's values in the order of the label file's rows."""
    rows = {r: i for i, r in enumerate(sub.row_ids)}
    return sub.values[[rows[r] for r in truth.row_ids]]


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


def link_copies(audio: list[Path], folder: Path, copies: int) -> list[Path]:
    """``copies`` folders under ``folder``, each linking every path of ``audio``: the same files N times
    over (the teacher's cache scores each once); returns the links (folders named on the command line are
    followed, links inside them are not)."""
    links = []
    for k in range(copies):
        for path in audio:
            target = folder / f"copy_{k}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(path.resolve())
            links.append(target)
    return links


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
            audio = (protocol_audio(args) if share >= 1 else
                     link_audio(args.data, args.out / f"audio_{share}", share))
            if name.startswith("copies"):
                audio = link_copies(audio, args.out / f"audio_{name}", int(name.partition("_")[2]))
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
    fitted, n_calls = fit_student(scored, recipe, run_.scorer(columns), progress=False)
    write_student(args.model, run_, species, fitted, n_calls, recipe, {"train_csv_labels": str(args.data)},
                  teacher_evidence(audio_peaks(run_.logits), columns, species))
    logging.getLogger("bench").info("peak memory (RSS) %.0f MB",
                                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def recipe_from(settings: list[str]) -> DistillRecipe:
    recipe = DistillRecipe()
    for item in settings:
        key, _, value = item.partition("=")
        recipe = recipe.with_override(key, value)
    return recipe


def distilled(args: argparse.Namespace) -> tuple[DistillRecipe, TeacherPass, list[int]]:
    """The recipe of ``--set``, the teacher's pass over the linked audio, and the learnt columns."""
    recipe = recipe_from(args.set)
    run_ = run_teacher(protocol_audio(args), args.out / "teacher", recipe.teacher, args.out / "teacher_cache",
                       progress=False)
    return recipe, run_, SpeciesChoice().columns(run_.teacher, audio_peaks(run_.logits)[0],
                                                 species_floor(recipe.teacher, run_.teacher))


def protocol_audio(args: argparse.Namespace) -> list[Path]:
    """What the student hears: bench206's training audio (``bench206``), or the station's soundscapes and
    bench206's ``train_soundscapes/`` (``station``: no focal clips)."""
    if args.protocol == "station":
        return [args.station, args.data / "train_soundscapes"]
    return link_audio(args.data, args.out / "audio")


def cross_validate(args: argparse.Namespace) -> None:
    """Folds of files: a whole student per fold, scored by its fidelity to the teacher on held-out windows
    (every held-out call mixed; the check of ``birdd distill --check`` mixes at most 1000)."""
    logging.basicConfig(level=logging.WARNING)
    recipe, run_, columns = distilled(args)
    scored = run_.scored(columns, recipe.teacher)
    results = []
    for fold in range(args.folds):
        started = time.perf_counter()
        held = [i for i in range(len(scored)) if i % args.folds == fold]
        result, reference = held_out_fidelity(run_, scored, columns, recipe, held, np.random.default_rng(100 + fold),
                                              progress=False, max_calls=None)
        if result is not None:
            results.append(result[0])
        print(f"fold {fold}: fidelity {f'{result[0]:.4f}' if result else 'none'} on {len(reference)} held-out "
              f"windows, {time.perf_counter() - started:.0f} s", flush=True)
    print(f"cv {' '.join(args.set) or 'default'}: fidelity {statistics.mean(results):.4f}" if results else
          "cv: no fold has a species the teacher hears in some held-out windows and not in others")


def compare_heads(args: argparse.Namespace) -> None:
    """One student's features (its codebook, skip-gram vectors and idf fitted on all the protocol's unlabelled
    audio, as `birdd distill` does), then each head (`KIND:L2[:UNITS]`, :func:`route_scores`) fitted on the
    training windows of one fold of files and scored by its fidelity to the teacher on the other fold's held-out
    windows, over every teacher species (one the student lacks at a floor scores a constant: chance); then
    fitted on all windows and scored once on the test soundscapes. Each ``--augment N`` adds the first N
    augmented windows (:mod:`trainer.distill_augment`, of the same files, scored by the teacher) to the head's
    windows (the features are those without them: the codebook never samples them)."""
    logging.basicConfig(level=logging.WARNING)
    recipe, run_, _ = distilled(args)
    counts = args.augment or [recipe.teacher.augment_windows]
    augmented = recipe.with_override("teacher.augment_windows", str(max(counts)))
    columns = list(range(len(run_.teacher.species)))
    codes = [s.code for s in run_.teacher.species]
    peak, found = audio_peaks(run_.logits)
    found_mask = found > 0
    scored = run_.scored(columns, recipe.teacher)
    streams, windows, _ = student_inputs(scored, recipe)
    started = time.perf_counter()
    backend, _ = fit_stsg_features(streams, windows, recipe.student)
    all_x, all_y, all_base = with_augmentation(backend, windows, scored, augmented, run_.scorer(columns))
    folds = []
    for fold in range(2):
        kept = [s for i, s in enumerate(scored) if i % 2 != fold]
        _, fold_windows, _ = student_inputs(kept, recipe)
        held = [i for i in range(len(scored)) if i % 2 == fold]
        references = held_out_windows(run_, held, columns, np.random.default_rng(100 + fold), max_calls=args.max_calls)
        folds.append((*with_augmentation(backend, fold_windows, kept, augmented, run_.scorer(columns)),
                      *held_out_vectors(backend, references)))
    test_x, truth = test_vectors(backend, args.data)
    print(f"protocol {args.protocol}: {len(scored)} files, {all_base} training windows (+ {len(all_x) - all_base} "
          f"augmented), features "
          f"{time.perf_counter() - started:.0f} s; {int(found_mask.sum())} of {len(codes)} teacher species found "
          f"(>= {FOUND}) in the audio", flush=True)
    print("| head | augmented windows | floor | species learnt | fidelity, 2-fold (all / found / not found) | "
          "folds 0, 1 (all) | test macro ROC-AUC (once) |")
    print("|---|---|---|---|---|---|---|")
    for spec, count in itertools.product(args.head, counts):
        fold_scores = [(route_scores(spec, *first(x, y, n_base, count), held, found_mask), ref)
                       for (x, y, n_base), held, ref in ((f[:3], f[3], f[4]) for f in folds)]
        test = route_scores(spec, *first(all_x, all_y, all_base, count), test_x, found_mask)
        for floor in args.floor:
            learnt = peak >= floor
            parts, per_fold = [], []
            for group in (np.ones_like(learnt), found_mask, ~found_mask):
                values = [fidelity(ref[:, group], lacking(scores, learnt)[:, group], list(np.array(codes)[group]))
                          for scores, ref in fold_scores]
                parts.append(f"{statistics.mean(v[0] for v in values if v):.4f}" if any(values) else "-")
                per_fold = per_fold or [f"{v[0]:.4f}" if v else "-" for v in values]
            print(f"| {spec} | {count} | {floor} | {int(learnt.sum())} | {' / '.join(parts)} | {', '.join(per_fold)} | "
                  f"{aligned_auc(truth, codes, lacking(test, learnt)):.4f} |", flush=True)


def cache_augmented(args: argparse.Namespace) -> None:
    """The teacher's scores of the augmented windows that `heads --augment N` draws from the files of
    ``--files`` (``all``, or fold 0 or 1's training files), into the teacher score cache: run one process per
    set beside `heads` and it finds them cached."""
    logging.basicConfig(level=logging.WARNING)
    recipe, run_, _ = distilled(args)
    columns = list(range(len(run_.teacher.species)))
    scored = run_.scored(columns, recipe.teacher)
    kept = scored if args.files == "all" else [s for i, s in enumerate(scored) if i % 2 != int(args.files)]
    started, cpu = time.perf_counter(), time.process_time()
    misses = run_.teacher.cache.misses
    extra = augmentation(kept, recipe.with_override("teacher.augment_windows", str(args.augment)),
                         run_.scorer(columns), progress=False, at_most=args.augment)
    scored_now = run_.teacher.cache.misses - misses
    print(f"{args.files}: {extra.count if extra else 0} augmented windows, {scored_now} scored by the teacher "
          f"(the others cached): {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.1f} s CPU"
          + (f", {(time.process_time() - cpu) / scored_now:.3f} s CPU per window" if scored_now else ""))


def with_augmentation(backend, windows: WindowSource, scored: list[ScoredAudio], recipe: DistillRecipe,
                      score: Scorer) -> tuple[np.ndarray, np.ndarray, int]:
    """Features and targets of ``windows``, then of the recipe's augmented windows of ``scored`` (the head's, as
    `birdd distill` fits it), and how many of them are ``windows``'."""
    x, y = window_features(backend, windows)
    extra = augmentation(scored, recipe, score, progress=False, at_most=windows.count)
    if extra is None:
        return x, y, len(x)
    ax, ay = window_features(backend, extra)
    return np.concatenate([x, ax]), np.concatenate([y, ay]), len(x)


def first(x: np.ndarray, y: np.ndarray, n_base: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The base windows and the first ``count`` augmented ones (the augmented sequence is the same prefix for
    every count, :func:`trainer.distill_augment.augmented_pieces`)."""
    return x[: n_base + count], y[: n_base + count]


def lacking(scores: np.ndarray, learnt: np.ndarray) -> np.ndarray:
    """``scores`` with the columns of the species not learnt set to 0 (a student that lacks them)."""
    return np.where(learnt[None, :], scores, 0.0)


def residual_mlp(x: np.ndarray, y: np.ndarray, vectors: np.ndarray, l2: float, hidden: int, epochs: int,
                 found: np.ndarray) -> np.ndarray:
    """Two stages: least squares on the probabilities (L2 ``l2``), then a one-hidden-layer ReLU network
    (``hidden`` units, Adam, ``epochs`` passes, seeded) fitted to its residuals on the same windows."""
    linear_x = route_scores(f"squares:{l2}", x, y, x, found)
    linear_v = route_scores(f"squares:{l2}", x, y, vectors, found)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    rng = np.random.default_rng(11)
    params = [rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32),
              np.zeros(hidden, np.float32), np.zeros((hidden, y.shape[1]), np.float32),
              np.zeros(y.shape[1], np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    residual = (y - linear_x).astype(np.float32)
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x)), max(1, len(x) // 256)):
            z = ((x[batch] - mean) / scale).astype(np.float32)
            h = np.maximum(z @ params[0] + params[1], 0)
            err = (h @ params[2] + params[3] - residual[batch]) / len(batch)
            dh = (err @ params[2].T) * (h > 0)
            grads = [z.T @ dh + 1e-4 * params[0], dh.sum(axis=0), h.T @ err + 1e-4 * params[2], err.sum(axis=0)]
            step += 1
            for p, g, m in zip(params, grads, moments, strict=True):
                m[0] = 0.9 * m[0] + 0.1 * g
                m[1] = 0.999 * m[1] + 0.001 * g * g
                p -= 1e-3 * (m[0] / (1 - 0.9**step)) / (np.sqrt(m[1] / (1 - 0.999**step)) + 1e-8)
    z = ((vectors - mean) / scale).astype(np.float32)
    return linear_v + np.maximum(z @ params[0] + params[1], 0) @ params[2] + params[3]


def route_scores(spec: str, x: np.ndarray, y: np.ndarray, vectors: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Scores of ``vectors`` (their order per species is all fidelity and ROC-AUC read) by a head fitted on
    ``x`` and the soft targets ``y``: ``squares:L2`` least squares on the probabilities (birdd distill's head,
    before its calibration, which keeps the order); ``logits:L2`` on the teacher's logits (the same as
    regressing the teacher's embedding and applying its own linear classifier layer: least squares commutes
    with a linear map of the targets); ``relu:L2:UNITS`` least squares on the features plus UNITS seeded random
    ReLU features of them (a two-layer head); ``mlp:L2:UNITS:EPOCHS`` :func:`residual_mlp`; ``hybrid:L2``
    probabilities for the species the teacher finds in the audio (``found``), logits for the others;
    ``clipped:L2:FLOOR`` the logits raised to at least FLOOR (the negative tail, where the teacher says nothing,
    cut off); ``power:L2:GAMMA`` the probabilities to the power GAMMA (between probabilities and logits)."""
    kind, _, rest = spec.partition(":")
    l2, _, units = rest.partition(":")
    if kind == "hybrid":
        return np.where(found[None, :], route_scores(f"squares:{l2}", x, y, vectors, found),
                        route_scores(f"logits:{l2}", x, y, vectors, found))
    if kind == "mlp":
        hidden, _, epochs = units.partition(":")
        return residual_mlp(x, y, vectors, float(l2), int(hidden), int(epochs or 4), found)
    if kind == "logits":
        y = least_squares_targets(y.astype(np.float64), -np.inf)
    if kind in ("clipped", "power"):  # least squares on transformed probabilities
        y64 = y.astype(np.float64)
        y = least_squares_targets(y64, float(units)) if kind == "clipped" else y64 ** float(units)
        kind, units = "squares", ""
    mean, scale = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64) + 1e-6
    rng = np.random.default_rng(7)
    projection = rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], int(units or 0)))
    offset = rng.normal(0, 0.5, int(units or 0))

    def features(rows: np.ndarray) -> np.ndarray:
        z = (rows - mean) / scale
        return np.hstack([z, np.maximum(z @ projection + offset, 0)]) if kind == "relu" else z

    if kind not in ("squares", "logits", "relu"):
        sys.exit(f"--head {spec}: KIND is squares, logits, clipped, power, relu, hybrid or mlp")
    gram, moment, total, n = 0, 0, 0, len(x)
    for start in range(0, n, 4096):
        f = features(x[start: start + 4096])
        gram, moment, total = gram + f.T @ f, moment + f.T @ y[start: start + 4096], total + f.sum(axis=0)
    centre, target_mean = total / n, y.mean(axis=0)
    gram = gram - n * np.outer(centre, centre)
    moment = moment - n * np.outer(centre, target_mean)
    weights = np.linalg.solve(gram + float(l2) * n * np.eye(len(gram)), moment)
    return np.concatenate([(features(vectors[s: s + 4096]) - centre) @ weights
                           for s in range(0, len(vectors), 4096)]) + target_mean


def by_evidence(args: argparse.Namespace) -> None:
    """Each submission's test macro ROC-AUC on the species the teacher finds in the audio and on the others."""
    logging.basicConfig(level=logging.WARNING)
    _, run_, _ = distilled(args)
    _, found = audio_peaks(run_.logits)
    heard = {s.code for s, n in zip(run_.teacher.species, found, strict=True) if n}
    truth = read_table(args.data / "test_soundscapes_labels.csv")
    in_audio = np.array([c in heard for c in truth.columns])
    groups = [(f"found (peak >= {FOUND})", in_audio), ("not found", ~in_audio)]
    tested = truth.values.sum(axis=0) > 0
    print("| model | " + " | ".join(f"{name}: {int(np.sum(keep & tested))} species" for name, keep in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for model in args.models:
        sub = read_table(model.parent / f"{model.name}.csv")
        values = rows_of(sub, truth)
        parts = [Table(truth.row_ids, list(np.array(truth.columns)[keep]), truth.values[:, keep]) for _, keep in groups]
        print(f"| {model.name} | " + " | ".join(f"{aligned_auc(part, sub.columns, values):.4f}" for part in parts)
              + " |", flush=True)


def head_probabilities(arrays: dict[str, np.ndarray], vectors: np.ndarray) -> np.ndarray:
    return LinearHead(**{k.removeprefix("head_"): v for k, v in arrays.items()}).probabilities(vectors)


def test_vectors(backend, data: Path) -> tuple[np.ndarray, Table]:
    """The window vectors of the test soundscapes, in the order of their label file's rows."""
    truth = read_table(data / "test_soundscapes_labels.csv")
    vectors = {}
    for path in sorted((data / "test_soundscapes").glob("*.ogg")):
        for result in embed_signal(backend, read_audio(path), WindowGrid()):
            vectors[f"{path.stem}_{result.start_sample // SAMPLE_RATE + WINDOW_SECONDS}"] = result.vector
    return np.stack([vectors[r] for r in truth.row_ids]), truth


def check_by_species(args: argparse.Namespace) -> None:
    """Does a `--check` report's per-species fidelity follow the student's per-species test ROC-AUC (or its gap
    to the teacher)? Spearman correlations over the species scored by both (MODEL.csv and teacher.csv from
    `table`)."""
    from scipy.stats import spearmanr

    truth = read_table(args.data / "test_soundscapes_labels.csv")
    checked = json.loads((args.model / "manifest.json").read_text())["distillation"]["check"]["species"]
    student, teacher = (per_species_auc(truth, args.model.parent / f"{name}.csv") for name in (args.model.name,
                                                                                                 "teacher"))
    common = sorted(set(checked) & set(student) & set(teacher))
    check = [checked[c]["fidelity"] for c in common]
    to_test, to_gap = (spearmanr(check, values) for values in ([student[c] for c in common],
                                                               [student[c] - teacher[c] for c in common]))
    print(f"{len(common)} species in the check and the test; Spearman of the check's fidelity with the student's "
          f"test ROC-AUC {to_test.statistic:.2f} (p {to_test.pvalue:.2f}), with its gap to the teacher "
          f"{to_gap.statistic:.2f} (p {to_gap.pvalue:.2f})")
    for code in sorted(common, key=lambda c: checked[c]["fidelity"])[:3]:
        print(f"  {code}: check {checked[code]['fidelity']:.2f} ({checked[code]['windows']} windows), test: "
              f"student {student[code]:.3f}, teacher {teacher[code]:.3f}")


def per_species_auc(truth: Table, submission: Path) -> dict[str, float]:
    """Test ROC-AUC per species of a submission, over the species it scores with a test positive."""
    sub = read_table(submission)
    values = rows_of(sub, truth)
    present = [c for c in truth.columns if c in sub.columns]
    labels = truth.values[:, [truth.columns.index(c) for c in present]]
    return macro_roc_auc(labels, values[:, [sub.columns.index(c) for c in present]], present)[1]


def aligned_auc(truth: Table, codes: list[str], scores: np.ndarray) -> float:
    """Macro ROC-AUC on the test labels; test columns the model lacks score 0."""
    cols = {c: j for j, c in enumerate(codes)}
    aligned = np.stack([scores[:, cols[c]] if c in cols else np.zeros(len(scores)) for c in truth.columns], axis=1)
    return macro_roc_auc(truth.values, aligned, truth.columns)[0]


def station(args: argparse.Namespace) -> None:
    birdd = str(Path(sys.executable).with_name("birdd"))
    teacher = teacher_bundle(birdd, args.data, args.out)
    soundscapes = sorted((args.data / "test_soundscapes").glob("*.ogg"))
    truth = read_table(args.data / "test_soundscapes_labels.csv")
    print("| scored on | model | macro ROC-AUC (species) | train s | peak MB |")
    print("|---|---|---|---|---|")
    for fold in (0, 1):
        folder = args.out / f"station_{fold}"
        audio = link_audio(args.data, folder / "audio")
        site = folder / "audio" / "site"
        site.mkdir(exist_ok=True)
        for path in soundscapes[fold::2]:
            if not (site / path.name).exists():
                (site / path.name).symlink_to(path.resolve())
        model = folder / "student"
        wall, peak, _ = run([birdd, "distill", *map(str, audio), str(site), "--teacher", str(teacher), "-o",
                             str(model), "--no-progress", "--cache-dir", str(args.out / "teacher_cache"),
                             *shlex.split(args.options)])
        scored = soundscapes[1 - fold::2]
        submission = folder / "student.csv"
        run([birdd, "--log-level", "WARNING", "replay", *map(str, scored), "-m", str(model), "-o", str(submission),
             "--no-progress"])
        stems = {path.stem for path in scored}
        keep = [i for i, r in enumerate(truth.row_ids) if r.rsplit("_", 1)[0] in stems]
        half = Table([truth.row_ids[i] for i in keep], truth.columns, truth.values[keep])
        present = int((half.values.sum(axis=0) > 0).sum())
        name = f"fold {fold}: the {len(scored)} {'odd' if fold == 0 else 'even'}-numbered files"
        for label, path, cost in [("teacher", args.out / "teacher.csv", "- | -"),
                                  *((f"{m} (training audio only)", args.out / f"{m}.csv", "- | -")
                                    for m in args.compare),
                                  (f"student + {len(soundscapes) - len(scored)} site files", submission,
                                   f"{wall:.0f} | {peak:.0f}")]:
            sub = read_table(path)
            print(f"| {name} | {label} | {aligned_auc(half, sub.columns, rows_of(sub, half)):.4f} ({present}) | "
                  f"{cost} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--out", type=Path, default=Path("out/distill"))
    parser.add_argument("--protocol", choices=("bench206", "station"), default="bench206",
                        help="the audio the student hears (heads, cv, evidence, table)")
    parser.add_argument("--station", type=Path, default=STATION_AUDIO, help="the station protocol's soundscapes")
    commands = parser.add_subparsers(dest="command", required=True)
    table_parser = commands.add_parser("table")
    table_parser.add_argument("configs", nargs="*", default=["teacher", "default=", "labels", "hours_0.25=",
                                                              "hours_0.5="])
    cv_parser = commands.add_parser("cv")
    cv_parser.add_argument("--folds", type=int, default=3)
    cv_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    heads_parser = commands.add_parser("heads")
    heads_parser.add_argument("--head", action="append", required=True, metavar="LOSS:L2")
    heads_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    heads_parser.add_argument("--floor", action="append", type=float, default=None,
                              help="score each head as a student learning the species whose teacher peak reaches "
                                   "this (repeatable; default 0: every teacher species)")
    heads_parser.add_argument("--max-calls", type=int, default=None, help="held-out calls mixed at most")
    heads_parser.add_argument("--augment", action="append", type=int, default=None, metavar="N",
                              help="score each head also with the first N augmented windows (repeatable)")
    evidence_parser = commands.add_parser("evidence")
    evidence_parser.add_argument("models", nargs="+", type=Path)
    evidence_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    cache_parser = commands.add_parser("cache-augmented")
    cache_parser.add_argument("--augment", type=int, required=True, metavar="N")
    cache_parser.add_argument("--files", choices=("all", "0", "1"), required=True)
    cache_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    check_parser = commands.add_parser("check-species")
    check_parser.add_argument("model", type=Path)
    station_parser = commands.add_parser("station")
    station_parser.add_argument("options", nargs="?", default="--set teacher.species_floor=0")
    station_parser.add_argument("--compare", nargs="*", default=["student", "student_s1", "student_s2"])
    labels_parser = commands.add_parser("labels", help="(internal) the `labels` row's student")
    labels_parser.add_argument("model", type=Path)
    labels_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if getattr(args, "floor", 0) is None:
        args.floor = [0.0]
    if args.command == "table":
        table(args)
    elif args.command == "cv":
        cross_validate(args)
    elif args.command == "heads":
        compare_heads(args)
    elif args.command == "evidence":
        by_evidence(args)
    elif args.command == "cache-augmented":
        cache_augmented(args)
    elif args.command == "check-species":
        check_by_species(args)
    elif args.command == "station":
        station(args)
    else:
        logging.basicConfig(level=logging.INFO)
        with_labels(args)


if __name__ == "__main__":
    main()
