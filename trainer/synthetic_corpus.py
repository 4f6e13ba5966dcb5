"""A small synthetic BirdCLEF-style corpus: made-up 'species' of chirps in noise.

For the demo on machines without real data, and for tests. Every file it writes says it is
synthetic (species names, README). Deterministic for a seed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.constants import SAMPLE_RATE, WINDOW_SECONDS
from trainer.synthesis import pink_noise

SHAPES = ("up", "down", "trill", "stack")


@dataclass(frozen=True)
class CallType:
    """How one synthetic species calls."""

    code: str
    shape: str
    f0: float  # hertz
    duration: float  # seconds per syllable
    syllables: int
    gap: float  # seconds between syllables


def species_catalogue(n_species: int, rng: np.random.Generator) -> list[CallType]:
    """``n_species`` distinct call types (shape and pitch differ from one to the next)."""
    pitches = np.geomspace(1500, 9000, n_species)
    return [CallType(f"syn{i + 1:02d}", SHAPES[i % len(SHAPES)], float(pitches[i] * rng.uniform(0.95, 1.05)),
                     float(rng.uniform(0.08, 0.3)), int(rng.integers(2, 6)), float(rng.uniform(0.05, 0.2)))
            for i in range(n_species)]


def render_call(call: CallType, rng: np.random.Generator) -> np.ndarray:
    """One call (a few syllables), unit peak, with small random variation."""
    sr = SAMPLE_RATE
    f0 = call.f0 * rng.uniform(0.97, 1.03)
    n = int(call.duration * sr)
    t = np.arange(n) / sr
    if call.shape == "up":
        freq = f0 * (1 + 0.5 * t / call.duration)
    elif call.shape == "down":
        freq = f0 * (1.5 - 0.5 * t / call.duration)
    elif call.shape == "trill":
        freq = f0 * (1 + 0.08 * np.sin(2 * np.pi * 40 * t))
    else:
        freq = np.full(n, f0)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    tone = np.sin(phase) + (0.5 * np.sin(2 * phase) if call.shape == "stack" else 0.0)
    syllable = tone * np.hanning(n)
    gap = np.zeros(int(call.gap * sr))
    parts = [np.concatenate([syllable, gap]) for _ in range(call.syllables)]
    audio = np.concatenate(parts)
    return (audio / np.abs(audio).max()).astype(np.float32)


def ambience(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Field-like background: pink noise with a slow level drift and a low hum."""
    n = int(seconds * SAMPLE_RATE)
    drift = 1 + 0.3 * np.sin(2 * np.pi * np.arange(n) / n * rng.uniform(1, 3) + rng.uniform(0, 6))
    hum = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 200) * np.arange(n) / SAMPLE_RATE)
    return (0.02 * (pink_noise(n, rng) * drift + hum)).astype(np.float32)


def write_corpus(root: str | Path, n_species: int = 8, clips_per_species: int = 6, train_soundscapes: int = 4,
                 test_soundscapes: int = 4, soundscape_seconds: int = 60, seed: int = 0) -> Path:
    """Write taxonomy.csv, train.csv, train_audio/, train_soundscapes/, test_soundscapes/ and the test labels."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    calls = species_catalogue(n_species, rng)
    (root / "train_audio").mkdir(parents=True, exist_ok=True)
    with (root / "taxonomy.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["primary_label", "common_name", "scientific_name", "class_name"])
        for i, call in enumerate(calls):
            out.writerow([call.code, f"Synthetic {call.shape}-chirper {i + 1}", f"Synthetica {call.shape} {i + 1}",
                          "Synthetic"])
    with (root / "train.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["primary_label", "filename", "rating"])
        for call in calls:
            (root / "train_audio" / call.code).mkdir(exist_ok=True)
            for k in range(clips_per_species):
                clip = ambience(rng.uniform(2, 4), rng)
                sound = render_call(call, rng)[: clip.size]
                offset = int(rng.integers(0, clip.size - sound.size + 1))
                clip[offset: offset + sound.size] += rng.uniform(0.2, 0.5) * sound
                name = f"{call.code}/{call.code}_{k:03d}.ogg"
                sf.write(root / "train_audio" / name, clip, SAMPLE_RATE, format="OGG", subtype="VORBIS")
                out.writerow([call.code, name, "5.0"])
    for i in range(train_soundscapes):
        audio, _ = _soundscape(calls, soundscape_seconds, rng)
        _write(root / "train_soundscapes" / f"syn_train_{i:03d}.ogg", audio)
    labels, events = [], {}
    for i in range(test_soundscapes):
        stem = f"syn_test_{i:03d}"
        audio, placed = _soundscape(calls, soundscape_seconds, rng)
        _write(root / "test_soundscapes" / f"{stem}.ogg", audio)
        events[stem] = [{"species": c, "start": round(a, 3), "end": round(b, 3)} for c, a, b in placed]
        for end in range(WINDOW_SECONDS, soundscape_seconds + 1, WINDOW_SECONDS):
            present = {c for c, a, b in placed if a < end and b > end - WINDOW_SECONDS}
            labels.append([f"{stem}_{end}", *(int(call.code in present) for call in calls)])
    with (root / "test_soundscapes_labels.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["row_id", *(c.code for c in calls)])
        out.writerows(labels)
    (root / "test_soundscapes_events.json").write_text(json.dumps(events, indent=1))
    (root / "README.md").write_text(
        "# SYNTHETIC corpus made by `birdd synth`\n\nNot bird recordings: made-up 'species' of chirps in pink noise, "
        "laid out like BirdCLEF so the demo and tests run anywhere. Scores on it say nothing about real birds.\n")
    return root


def _soundscape(calls: list[CallType], seconds: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    audio = ambience(seconds, rng)
    placed = []
    for _ in range(int(rng.integers(seconds // 10, seconds // 4 + 1))):
        call = calls[int(rng.integers(len(calls)))]
        sound = render_call(call, rng) * rng.uniform(0.05, 0.4)
        start = int(rng.integers(0, audio.size - sound.size))
        audio[start: start + sound.size] += sound
        placed.append((call.code, start / SAMPLE_RATE, (start + sound.size) / SAMPLE_RATE))
    return audio, placed


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, format="OGG", subtype="VORBIS")
