"""A student/teacher cascade on bench206: the student alone, the teacher alone and the cascade, side by side.

The teacher is BirdNET V2.4 zero-shot on ``taxonomy.csv`` (``birdd train DATA --backend tflite --zero-shot``,
made once in OUT/teacher, or linked there: its scores of the training audio are cached by its manifest's sha256
in ~/.cache/birdd); the student is ``birdd distill`` with the default options on bench206's unlabelled
``train_audio/`` + ``train_soundscapes/``.

  models     the teacher (if OUT/teacher is missing), the student (OUT/student: all the audio) and, for the
             cross-validation, a student of each fold's half of the audio files (OUT/fold_K/student; the
             files split by a seeded permutation of each folder)
  teacher    the teacher alone on the test soundscapes and on each fold's held-out files (its scores and CPU
             kept in OUT/teacher_*.npz for `choose` and `test`; run beside `models`, it does not need them)
  choose     the screen threshold, by cross-validation on the training audio against the teacher: each fold's
             student and the teacher score the other fold's files (5-s windows, the replay grid); for each
             candidate threshold, the cascade's scores (the teacher's where the student's best score reaches
             it) give the share of windows sent to the teacher and the fidelity (macro ROC-AUC against the
             teacher's verdicts, probability >= 0.5); the threshold kept is the most faithful one whose share
             keeps the cascade's CPU within 1/15 of the teacher's (CPU measured here, on the held-out files)
  test       the test soundscapes, once: the student alone, the teacher alone, the cascade at --thresholds
             (each through the daemon's ScoringPipeline with its Cascade stage, as ``birdd replay
             --cascade`` runs it): macro ROC-AUC, detections at 0.5 (and how many name a labelled species),
             the share of windows sent to the teacher, CPU per audio minute (decoding excluded, one thread,
             teacher calls included)

usage: python bench/cascade.py [--data ../shared/bench206] [--out out/cascade] models | choose | test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.audio.files import find_audio_files, read_audio
from daemon.batch.evaluate import macro_roc_auc, read_table
from daemon.constants import SAMPLE_RATE
from daemon.model.loader import Model, load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.cascade import CascadeTeacher, teacher_columns
from daemon.pipeline.scoring import AudioBlock, PipelineStats, ScoringPipeline

AUDIO_FOLDERS = ("train_audio", "train_soundscapes")
FOLDS = 2
CANDIDATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""screen thresholds the cross-validation compares"""
CPU_BAR = 1 / 15
"""issue 22: a student's (a cascade's) CPU per audio minute at most this share of the teacher's"""
VERDICT = 0.5
"""a teacher probability at or above this is a detection: the verdict the fidelity scores against"""
GRID = WindowGrid()
"""the replay grid of a submission: 5-s windows, 5 s apart"""


def birdd(*args: str) -> None:
    """Run the CLI (exits with its stderr on failure)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("birdd")), *map(str, args)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"birdd {' '.join(map(str, args))} failed:\n{proc.stderr}")


def fold_files(data: Path) -> list[list[Path]]:
    """Each fold's files: every folder's files split alternately over a seeded permutation."""
    folds: list[list[Path]] = [[] for _ in range(FOLDS)]
    for name in AUDIO_FOLDERS:
        files = sorted((data / name).rglob("*.ogg"))
        for rank, i in enumerate(np.random.default_rng(0).permutation(len(files))):
            folds[rank % FOLDS].append(files[i])
    return folds


def link_fold(files: list[Path], folder: Path) -> Path:
    """``files`` linked one by one into ``folder`` (kept in their folder's name, so stems stay unique)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(exist_ok=True)
        if not target.exists():
            target.symlink_to(path.resolve())
    return folder


def make_models(args: argparse.Namespace) -> None:
    teacher = args.out / "teacher"
    if not (teacher / "manifest.json").exists():
        birdd("train", args.data, "--backend", "tflite", "--zero-shot", "-o", teacher)
    jobs = [(args.out / "student", [args.data / name for name in AUDIO_FOLDERS])]
    jobs += [(args.out / f"fold_{k}" / "student", [link_fold(files, args.out / f"fold_{k}" / "audio")])
             for k, files in enumerate(fold_files(args.data))]
    for student, audio in jobs:
        if not (student / "manifest.json").exists():
            started = time.perf_counter()
            birdd("distill", *audio, "--teacher", teacher, "-o", student, "--no-progress")
            print(f"{student}: {time.perf_counter() - started:.0f} s", flush=True)


def decode(files: list[Path]) -> list[tuple[Path, np.ndarray]]:
    """Every file decoded once (decoding is the same for every row and is left out of the CPU)."""
    return [(path, read_audio(path)) for path in files]


def scores_of(model: Model, signals: list[tuple[Path, np.ndarray]],
              teacher: CascadeTeacher | None = None) -> tuple[list[str], np.ndarray, float, int]:
    """Row ids, window scores, CPU seconds (one thread) and windows sent to the teacher, of ``model`` (with
    ``teacher``: the cascade) over ``signals``, through the daemon's ScoringPipeline."""
    rows, scores, stats = [], [], PipelineStats()
    with threadpool_limits(1):
        started = time.process_time()
        for path, samples in signals:
            cascade = teacher.stage(model, stats) if teacher is not None else None
            pipeline = ScoringPipeline(model, GRID, stats=stats, cascade=cascade)
            results = pipeline.push(AudioBlock(0, samples, str(path))) + pipeline.flush()
            rows += [f"{path.stem}_{round(r.end_sample / SAMPLE_RATE)}" for r in results]
            scores += [r.scores for r in results]
        spent = time.process_time() - started
    return rows, np.stack(scores), spent, stats.teacher_windows


def teacher_scores(args: argparse.Namespace, name: str,
                   signals: list[tuple[Path, np.ndarray]]) -> tuple[list[str], np.ndarray, float]:
    """The teacher alone over ``signals``: row ids, scores and CPU seconds, kept in OUT/teacher_NAME.npz (the
    teacher's pass is the slow one, and does not depend on the student)."""
    cached = args.out / f"teacher_{name}.npz"
    if not cached.exists():
        ids, scores, cpu, _ = scores_of(load_model(args.out / "teacher", threads=1), signals)
        np.savez(cached, rows=np.array(ids), scores=scores, cpu=cpu)
    with np.load(cached) as saved:
        return list(saved["rows"]), saved["scores"], float(saved["cpu"])


def held_out(args: argparse.Namespace, k: int) -> list[tuple[Path, np.ndarray]]:
    """The files fold ``k``'s student did not hear, decoded."""
    return decode([path for j, files in enumerate(fold_files(args.data)) if j != k for path in files])


def precompute_teacher(args: argparse.Namespace) -> None:
    teacher_scores(args, "test", decode(find_audio_files([args.data / "test_soundscapes"])))
    for k in range(FOLDS):
        teacher_scores(args, f"fold_{k}", held_out(args, k))


def minutes(signals: list[tuple[Path, np.ndarray]]) -> float:
    return sum(samples.size for _, samples in signals) / SAMPLE_RATE / 60


def simulated(student: np.ndarray, teacher: np.ndarray, columns: np.ndarray, threshold: float) -> np.ndarray:
    """The cascade's scores from both models' scores of the same windows (the rule of daemon.pipeline.cascade)."""
    known = columns >= 0
    flagged = student.max(axis=1) >= threshold
    out = student.copy()
    out[np.ix_(flagged, np.flatnonzero(known))] = teacher[np.ix_(flagged, columns[known])]
    return out


def fidelity(scores: np.ndarray, teacher: np.ndarray, columns: np.ndarray, verdict: float) -> float:
    """Macro ROC-AUC of ``scores`` against the teacher's verdicts (probability >= ``verdict``), over the species
    the teacher knows."""
    known = np.flatnonzero(columns >= 0)
    verdicts = (teacher[:, columns[known]] >= verdict).astype(np.float32)
    return macro_roc_auc(verdicts, scores[:, known], [str(j) for j in known])[0]


def choose(args: argparse.Namespace) -> None:
    teacher = load_model(args.out / "teacher", threads=1)
    shares: dict[float, list[float]] = {t: [] for t in CANDIDATES}
    faithful: dict[float, list[float]] = {t: [] for t in CANDIDATES}
    ratios, alone = [], []
    for k in range(FOLDS):
        student = load_model(args.out / f"fold_{k}" / "student", threads=1)
        heard = held_out(args, k)
        rows, s, s_cpu, _ = scores_of(student, heard)
        teacher_rows, t, t_cpu = teacher_scores(args, f"fold_{k}", heard)
        assert teacher_rows == rows
        columns = teacher_columns(teacher, student.species)
        ratios.append(s_cpu / t_cpu)
        alone.append(fidelity(s, t, columns, args.verdict))
        print(f"fold {k}: student {student.path} on {len(heard)} held-out files ({minutes(heard):.1f} min): "
              f"CPU {1000 * s_cpu / minutes(heard):.1f} ms/min, teacher {1000 * t_cpu / minutes(heard):.1f} "
              f"ms/min (1/{t_cpu / s_cpu:.1f}); fidelity of the student alone {alone[-1]:.4f}", flush=True)
        for threshold in CANDIDATES:
            shares[threshold].append(float((s.max(axis=1) >= threshold).mean()))
            faithful[threshold].append(fidelity(simulated(s, t, columns, threshold), t, columns, args.verdict))
    budget = CPU_BAR - float(np.mean(ratios))
    print(f"\nstudent alone: fidelity {np.mean(alone):.4f}; CPU 1/{1 / np.mean(ratios):.1f} of the teacher's, so the "
          f"cascade may send at most {100 * budget:.2f} % of the windows to the teacher (bar 1/15)\n")
    print("| screen threshold | windows sent to the teacher (folds) | fidelity to the teacher (folds) | "
          "CPU vs teacher |")
    print("|---|---|---|---|")
    within = []
    for threshold in CANDIDATES:
        share, fid = float(np.mean(shares[threshold])), float(np.mean(faithful[threshold]))
        if share <= budget:
            within.append((fid, threshold))
        folds_text = " / ".join(f"{100 * x:.2f} %" for x in shares[threshold])
        print(f"| {threshold:g} | {100 * share:.2f} % ({folds_text}) | {fid:.4f} "
              f"({' / '.join(f'{x:.4f}' for x in faithful[threshold])}) | 1/{1 / (np.mean(ratios) + share):.1f} |")
    chosen = max(within)[1] if within else max(CANDIDATES)
    why = "the most faithful within the CPU bar" if within else "none is within the CPU bar: the highest"
    print(f"\nchosen: screen_threshold = {chosen:g} ({why})")
    (args.out / "chosen.json").write_text(json.dumps({"screen_threshold": chosen}) + "\n")


def test(args: argparse.Namespace) -> None:
    truth = read_table(args.data / "test_soundscapes_labels.csv")
    signals = decode(find_audio_files([args.data / "test_soundscapes"]))
    student, teacher = load_model(args.student or args.out / "student", threads=1), load_model(args.out / "teacher",
                                                                                                threads=1)
    chosen = json.loads((args.out / "chosen.json").read_text())["screen_threshold"]
    at = CANDIDATES.index(chosen) if chosen in CANDIDATES else 1
    thresholds = args.thresholds or list(CANDIDATES[max(at - 1, 0): at + 2])
    rows = [("student alone", student, None), ("teacher alone", teacher, None)]
    rows += [(f"cascade, screen {t:g}{' (chosen)' if t == chosen else ''}", student, CascadeTeacher(teacher, t))
             for t in thresholds]
    total = minutes(signals)
    print(f"{len(signals)} test soundscapes, {total:.0f} min; CPU one thread, decoding excluded\n")
    print("| row | macro ROC-AUC (test) | detections at 0.5 (of a labelled species) | windows sent to the teacher "
          "| CPU ms per audio minute | CPU vs teacher |")
    print("|---|---|---|---|---|---|")
    measured = []
    for name, model, tutor in rows:
        if model is teacher:
            ids, scores, cpu = teacher_scores(args, "test", signals)
            sent = 0
        else:
            ids, scores, cpu, sent = scores_of(model, signals, tutor)
        order = {r: i for i, r in enumerate(ids)}
        aligned_rows = scores[[order[r] for r in truth.row_ids]]
        cols = {c: j for j, c in enumerate(model.codes)}
        aligned = np.stack([aligned_rows[:, cols[c]] if c in cols else np.zeros(len(aligned_rows))
                            for c in truth.columns], axis=1)
        auc = macro_roc_auc(truth.values, aligned, truth.columns)[0]
        hits = aligned >= 0.5
        correct = int((hits & (truth.values > 0.5)).sum())
        measured.append((name, auc, int(hits.sum()), correct, sent / len(ids), cpu))
    teacher_cpu = measured[1][5]
    for name, auc, detections, correct, share, cpu in measured:
        print(f"| {name} | {auc:.4f} | {detections} ({correct}) | {100 * share:.2f} % | {1000 * cpu / total:.1f} | "
              f"1/{teacher_cpu / cpu:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--out", type=Path, default=Path("out/cascade"))
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models")
    commands.add_parser("teacher")
    choose_parser = commands.add_parser("choose")
    choose_parser.add_argument("--verdict", type=float, default=VERDICT, help="teacher probability of a verdict")
    test_parser = commands.add_parser("test")
    test_parser.add_argument("--student", type=Path, default=None, help="the student (default: OUT/student)")
    test_parser.add_argument("--thresholds", type=float, nargs="*", default=None,
                             help="the cascade rows' screen thresholds (default: the chosen one and its neighbours)")
    args = parser.parse_args()
    {"models": make_models, "teacher": precompute_teacher, "choose": choose, "test": test}[args.command](args)


if __name__ == "__main__":
    main()
