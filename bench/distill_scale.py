"""Distillation against hours of a station's audio: wall time, peak RSS and the student's test score.

The station protocol's audio (``bench206-station/station_audio``: 150 unlabelled one-minute soundscapes, plus
bench206's ``train_soundscapes/``: 60 more; 3.5 h of distinct audio in all) is linked into one folder per
size, file by file in a seeded order; a size beyond 3.5 h cycles through the files again (the same audio
linked once more under ``cycle_K/``: the teacher's score cache scores each distinct file once, and the student
hears those minutes twice, so the longer sets measure time and memory, not what more distinct audio would
teach). Each set is distilled by ``birdd distill`` (teacher scores cached, default recipe), its wall time and
peak RSS taken from the child process; the student replays bench206's ``test_soundscapes/`` and is scored
by macro ROC-AUC as ``bench/distill.py`` scores it (test columns it lacks score 0).

usage: python bench/distill_scale.py [--hours 0.5 1 2.5 5 14] [--out out/scale] [--data ../shared/bench206]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill import STATION_AUDIO, run, teacher_bundle, teacher_cache_line, test_score

FILE_MINUTES = 1.0
"""every file of both folders is one minute long"""


def pool(data: Path, station: Path) -> list[Path]:
    """The station's soundscapes and bench206's training soundscapes, in a seeded order."""
    files = sorted(station.glob("*.ogg")) + sorted((data / "train_soundscapes").glob("*.ogg"))
    return [files[i] for i in np.random.default_rng(0).permutation(len(files))]


def hour_set(files: list[Path], hours: float, folder: Path) -> Path:
    """``folder`` holding links to the first ``hours`` of ``files``, cycled through as often as needed."""
    count = round(hours * 60 / FILE_MINUTES)
    for k in range(count):
        cycle, path = divmod(k, len(files))
        link = folder / f"cycle_{cycle}" / files[path].name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(files[path].resolve())
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--station", type=Path, default=STATION_AUDIO)
    parser.add_argument("--out", type=Path, default=Path("out/scale"))
    parser.add_argument("--hours", type=float, nargs="+", default=[0.5, 1, 2.5, 5, 14])
    parser.add_argument("--options", default="", help="extra `birdd distill` options for every row")
    args = parser.parse_args()
    birdd = str(Path(sys.executable).with_name("birdd"))
    teacher = teacher_bundle(birdd, args.data, args.out)
    files = pool(args.data, args.station)
    print("| hours of audio | files (distinct) | distil wall s | peak RSS MB | teacher cache | macro ROC-AUC (test) |")
    print("|---|---|---|---|---|---|")
    for hours in args.hours:
        audio = hour_set(files, hours, args.out / f"audio_{hours:g}h")
        model = args.out / f"student_{hours:g}h"
        wall, peak, text = run([birdd, "distill", str(audio), "--teacher", str(teacher), "-o", str(model),
                                "--no-progress", "--cache-dir", str(args.out / "teacher_cache"), *args.options.split()])
        found = re.search(r"(\d+) files \(([\d.]+) h of audio\)", text)
        count = int(found.group(1)) if found else 0
        print(f"| {found.group(2) if found else '?'} | {count} ({min(count, len(files))}) | {wall:.0f} | {peak:.0f} | "
              f"{teacher_cache_line(text)} | {test_score(birdd, model, args.data):.4f} |", flush=True)


if __name__ == "__main__":
    main()
