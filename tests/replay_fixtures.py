"""Helpers for replay-run tests: a folder of synthetic recordings, birdd as a subprocess, a runner that stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.constants import SAMPLE_RATE


def write_recordings(folder: Path, count: int, seconds: float, seed: int) -> Path:
    """``count`` noisy recordings with AudioMoth names (lengths vary by a few hundred samples)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        samples = rng.standard_normal(round(SAMPLE_RATE * seconds) + 331 * i).astype(np.float32) * 0.2
        sf.write(folder / f"202405{1 + i // 24:02d}_{i % 24:02d}0000.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    return folder


def birdd_command(*args: object) -> list[str]:
    """The command line of ``birdd args...`` from this venv."""
    return [str(Path(sys.executable).with_name("birdd")), "--log-level", "WARNING", *map(str, args)]


def run_birdd(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run birdd to completion; fail with its stderr if it fails."""
    proc = subprocess.run(birdd_command(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc


def run_birdd_killed_after(args: tuple, folder: Path, pattern: str, count: int) -> int:
    """Start ``birdd args...``, SIGKILL it once ``count`` files match ``pattern`` in ``folder``; returns how many
    match after the kill (fails if the run ends first)."""
    proc = subprocess.Popen(birdd_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(folder.glob(pattern))) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return len(list(folder.glob(pattern)))


def stopping_after(runner, results: int):
    """A runner that is interrupted (KeyboardInterrupt) after ``results`` segment results."""
    def run(job, segments):
        for i, result in enumerate(runner(job, segments)):
            if i == results:
                raise KeyboardInterrupt
            yield result
    return run
