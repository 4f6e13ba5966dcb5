"""False detections per hour with speech and noise mixed in, and detections lost on clean soundscapes, each filter
on and off (docs/filters.md).

Soundscapes: the first N of DATA/test_soundscapes (read only; never committed), with their 5-s labels. Each is
scored once per condition by the BirdNET all-classes zero-shot bundle (``birdd train --backend tflite --zero-shot
-o BUNDLE``); the filters then run over the same window results (and, for the VAD, the same audio), so the
figures differ by the filters alone. Conditions:

  clean    the soundscape as recorded
  speech   espeak-ng sentences (several voices) mixed in, two per minute, 6 dB above the soundscape's RMS
  white    white noise over the whole minute at the soundscape's RMS (0 dB SNR)
  pink     pink noise likewise (wind, rain)
  engine   a passing engine: 20 s of 70-Hz harmonics with a rough envelope and broadband rumble, 6 dB above
  engine-jitter   likewise, its fundamental wandering 45-85 Hz (revs, gear changes) with cycle-to-cycle jitter
  siren-wail      a passing siren, 6 dB above: a harmonic tone sweeping 600-1400 Hz and back every 5 s
  siren-two-tone  likewise, alternating 440 and 585 Hz every 0.6 s (the European "hi-lo")

(No dog barks: no freely licensed recording of one is on this machine, and nothing is downloaded.) For each
condition the windows in which one of BirdNET's noise classes (``filters.noise_classes``) scores at least
``filters.noise_threshold`` are counted too: that is what the noise filter acts on.

A detection (confidence >= --threshold) is true when its species (matched to the labels by common name) is
labelled in its window, else false. Per hour of audio: false detections; on clean audio also the true detections
a filter loses. CPU of the Silero VAD per audio second is reported too.

usage: python bench/false_positives.py [--data ../shared/bench206] [--bundle out/birdnet-all] [--files 20]
       [--conditions clean,siren-wail,...] [--filters off,noise,...]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from daemon.config import DetectionConfig, FiltersConfig
from daemon.constants import BLOCK_SAMPLES, SAMPLE_RATE
from daemon.filters.chain import build_filters
from daemon.filters.mask import PrivacyMask
from daemon.filters.stats import FilterStats
from daemon.model.labels import normalise_name
from daemon.model.loader import Model, load_model
from daemon.model.windows import WindowGrid
from daemon.pipeline.detection import StreamClock
from daemon.pipeline.policy import DetectionMaker
from daemon.pipeline.scoring import AudioBlock, ScoringPipeline, WindowResult
from daemon.pipeline.species_list import species_index

SENTENCES = [
    ("en", "Good morning. Could you bring the ladder over here, we need to fix the gate before the rain comes."),
    ("en-us", "I think the delivery is late again, let me call them and ask where the parcel is."),
    ("de", "Kannst du bitte die Tür zumachen, es wird langsam kalt hier draussen im Garten."),
    ("fr", "Nous allons au marché cet après-midi, tu veux venir avec nous ou rester à la maison?"),
    ("en+f3", "Have you seen the dog? He was in the garden a minute ago and now he is gone."),
    ("es", "Mañana vamos a cortar el césped y limpiar las hojas del camino."),
]
FILTERS = {
    "off": FiltersConfig(),
    "privacy, human classes": FiltersConfig(privacy=True, privacy_detector="classes"),
    "privacy, VAD": FiltersConfig(privacy=True, privacy_detector="vad"),
    "privacy, both (auto)": FiltersConfig(privacy=True),
    "noise": FiltersConfig(noise=True),
    "confirm": FiltersConfig(confirm=True),
    "all three": FiltersConfig(privacy=True, noise=True, confirm=True),
}
CONDITIONS = ("clean", "speech", "white", "pink", "engine", "engine-jitter", "siren-wail", "siren-two-tone")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def render_sentences(workdir: Path) -> list[np.ndarray]:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (make apt)")
    out = []
    for i, (voice, text) in enumerate(SENTENCES):
        path = workdir / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
        speech, rate = sf.read(path, dtype="float32")
        out.append(soxr.resample(speech, rate, SAMPLE_RATE).astype(np.float32))
    return out


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.arange(1, spectrum.size + 1))
    noise = np.fft.irfft(spectrum, n)
    return noise / rms(noise)


def engine(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 70 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 8))
    rough = 1 + 0.4 * np.sin(2 * np.pi * 11 * t) * np.sin(2 * np.pi * 0.3 * t)
    rumble = np.convolve(rng.standard_normal(n), np.ones(64) / 64, mode="same")
    sound = hum * rough + 2 * rumble / rms(rumble)
    return sound / rms(sound)


def smooth_noise(rng: np.random.Generator, n: int, step: int) -> np.ndarray:
    """Random values every ``step`` samples, linearly interpolated (unit variance)."""
    knots = rng.standard_normal(n // step + 2)
    return np.interp(np.arange(n) / step, np.arange(knots.size), knots)


def engine_jitter(rng: np.random.Generator, n: int) -> np.ndarray:
    revs = 65 + 20 * np.tanh(np.cumsum(smooth_noise(rng, n, SAMPLE_RATE)) / SAMPLE_RATE)  # 45-85 Hz, wandering
    jitter = 1 + 0.04 * smooth_noise(rng, n, SAMPLE_RATE // 70)  # each firing cycle a little off
    phase = 2 * np.pi * np.cumsum(revs * jitter) / SAMPLE_RATE
    hum = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 13))
    rumble = np.convolve(rng.standard_normal(n), np.ones(64) / 64, mode="same")
    sound = hum * (1 + 0.3 * smooth_noise(rng, n, SAMPLE_RATE // 8)) + 2 * rumble / rms(rumble)
    return sound / rms(sound)


def siren(rng: np.random.Generator, n: int, two_tone: bool) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    if two_tone:
        pitch = np.where((t // 0.6) % 2 == 0, 440.0, 585.0)
    else:
        pitch = 1000 - 400 * np.cos(2 * np.pi * t / 5 + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    sound = sum(np.sin(k * phase) / k for k in range(1, 7))  # a horn's harmonics
    return sound / rms(sound)


EVENTS = {"engine": engine, "engine-jitter": engine_jitter,
          "siren-wail": lambda rng, n: siren(rng, n, two_tone=False),
          "siren-two-tone": lambda rng, n: siren(rng, n, two_tone=True)}
"""20-s passing sounds, mixed 6 dB above the soundscape"""


def condition(name: str, audio: np.ndarray, rng: np.random.Generator, sentences: list[np.ndarray]) -> np.ndarray:
    level, n = rms(audio), audio.size
    out = audio.copy()
    if name == "speech":
        for at in rng.uniform(0, n - 6 * SAMPLE_RATE, size=2).astype(int):
            speech = sentences[rng.integers(len(sentences))][: n - at]
            out[at: at + speech.size] += 2.0 * level / rms(speech) * speech
    elif name == "white":
        out += level * rng.standard_normal(n).astype(np.float32)
    elif name == "pink":
        out += level * pink_noise(rng, n).astype(np.float32)
    elif name in EVENTS:
        at, length = int(rng.uniform(0, n - 20 * SAMPLE_RATE)), 20 * SAMPLE_RATE
        envelope = np.sin(np.linspace(0, np.pi, length)) ** 2
        out[at: at + length] += (2.0 * level * envelope * EVENTS[name](rng, length)).astype(np.float32)
    return out.astype(np.float32)


def score(model: Model, audio: np.ndarray, source: str) -> list[WindowResult]:
    pipeline, results = ScoringPipeline(model, WindowGrid()), []
    for start in range(0, audio.size, BLOCK_SAMPLES):
        results += pipeline.push(AudioBlock(start, audio[start: start + BLOCK_SAMPLES], source))
    return results + pipeline.flush()


def detect(maker: DetectionMaker, results: list[WindowResult]) -> list[WindowResult]:
    return [replace(r, detections=maker.detect(r.source, r.start_sample, r.end_sample, r.scores)) for r in results]


def filtered(config: FiltersConfig, model: Model, results: list[WindowResult], audio: np.ndarray,
             mask: PrivacyMask) -> list[WindowResult]:
    """The daemon's order: each block heard, then the windows it completes pushed; flushed at the end."""
    chain = build_filters(config, model.species, StreamClock(0.0), FilterStats(), mask)
    if chain is None:
        return results
    out, pending = [], list(results)
    for start in range(0, audio.size, BLOCK_SAMPLES):
        block = AudioBlock(start, audio[start: start + BLOCK_SAMPLES], pending[0].source if pending else "")
        chain.hear(block)
        done = [r for r in pending if r.end_sample <= block.end_sample]
        pending = pending[len(done):]
        out += chain.push(done)
    return out + chain.push(pending) + chain.flush()


def read_labels(data: Path) -> dict[tuple[str, int], set[str]]:
    with (data / "test_soundscapes_labels.csv").open() as fh:
        reader = csv.reader(fh)
        codes = next(reader)[1:]
        labels = {}
        for row in reader:
            stem, _, end = row[0].rpartition("_")
            labels[stem, int(end)] = {code for code, flag in zip(codes, row[1:], strict=True) if flag == "1"}
    return labels


def code_by_common_name(data: Path) -> dict[str, str]:
    with (data / "taxonomy.csv").open() as fh:
        return {normalise_name(row["common_name"]): row["primary_label"] for row in csv.DictReader(fh)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/bench206"))
    parser.add_argument("--bundle", type=Path, default=Path("out/birdnet-all"))
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="comma-separated, of: " + ", ".join(CONDITIONS))
    parser.add_argument("--filters", default=",".join(FILTERS), help="comma-separated, of: " + ", ".join(FILTERS))
    args = parser.parse_args()
    conditions = [c for c in args.conditions.split(",") if c]
    filters = {label: FILTERS[label] for label in args.filters.split(",") if label}
    if not set(conditions) <= set(CONDITIONS) or not filters or "off" not in filters:
        sys.exit(f"--conditions: of {', '.join(CONDITIONS)}; --filters: of {', '.join(FILTERS)}, with off")
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"{args.bundle}: no bundle; make it with: birdd train --backend tflite --zero-shot -o {args.bundle}")
    model = load_model(args.bundle)
    labels, codes = read_labels(args.data), code_by_common_name(args.data)
    truth_code = {s.code: codes.get(normalise_name(s.common_name)) for s in model.species}
    files = sorted((args.data / "test_soundscapes").glob("*.ogg"))[: args.files]
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        sentences = render_sentences(Path(tmp))
    maker = DetectionMaker(DetectionConfig(threshold=args.threshold), "bench", model, StreamClock(0.0))
    counts = {(c, f): [0, 0] for c in conditions for f in filters}  # (true, false)
    masked = {(c, f): 0 for c in conditions for f in filters}  # samples no clip or archive would keep
    noise_columns = [j for j in (species_index(e, model.species) for e in FiltersConfig().noise_classes)
                     if j is not None]
    noisy = {c: [0, 0, 0.0] for c in conditions}  # windows with a noise class at its threshold, windows, top score
    seconds = 0.0
    vad_cpu = vad_audio = 0.0
    started = time.perf_counter()
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        assert rate == SAMPLE_RATE, path
        seconds += audio.size / SAMPLE_RATE
        for name in conditions:
            mixed = condition(name, audio, rng, sentences)
            results = detect(maker, score(model, mixed, path.stem))
            noise = np.array([r.scores[noise_columns].max() for r in results])
            noisy[name][0] += int((noise >= FiltersConfig().noise_threshold).sum())
            noisy[name][1] += noise.size
            noisy[name][2] = max(noisy[name][2], float(noise.max()))
            for label, config in filters.items():
                cpu = time.process_time()
                mask = PrivacyMask()
                kept = filtered(config, model, results, mixed, mask)
                masked[name, label] += mask.silence(0, np.ones(mixed.size, np.float32)) if config.privacy else 0
                if label == "privacy, VAD":
                    vad_cpu, vad_audio = vad_cpu + time.process_time() - cpu, vad_audio + mixed.size / SAMPLE_RATE
                for result in kept:
                    window = labels.get((path.stem, round(result.end_sample / SAMPLE_RATE)), set())
                    for d in result.detections:
                        counts[name, label][0 if truth_code[d.species_code] in window else 1] += 1
        print(f"{path.name} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    hours = seconds / 3600
    print(f"{len(files)} soundscapes, {seconds / 60:.0f} min per condition, threshold {args.threshold}, "
          f"BirdNET V2.4 all-classes zero-shot ({args.bundle})\n")
    clean = "clean" in conditions
    print("| filters | " + " | ".join(f"false/h {c}" for c in conditions)
          + (" | true/h clean | lost on clean |" if clean else " |"))
    print("|---" * (len(conditions) + (3 if clean else 1)) + "|")
    for label in filters:
        cells = [f"{counts[c, label][1] / hours:.0f}" for c in conditions]
        if clean:
            true_clean, true_off = counts["clean", label][0], counts["clean", "off"][0]
            lost = f"{100 * (1 - true_clean / true_off):.1f} %" if true_off else "n/a"
            cells += [f"{true_clean / hours:.0f}", lost]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nwindows in which a noise class scores >= {FiltersConfig().noise_threshold} (what the noise filter acts "
          "on), and the highest noise-class score:\n")
    print("| | " + " | ".join(conditions) + " |")
    print("|---" * (len(conditions) + 1) + "|")
    print("| noise windows | " + " | ".join(f"{noisy[c][0]} of {noisy[c][1]}" for c in conditions) + " |")
    print("| top noise score | " + " | ".join(f"{noisy[c][2]:.3f}" for c in conditions) + " |")
    if any(config.privacy for config in filters.values()):
        print("\naudio no clip or archive would keep (privacy mask), share of each condition:\n")
        print("| filters | " + " | ".join(conditions) + " |")
        print("|---" * (len(conditions) + 1) + "|")
    for label, config in filters.items():
        if config.privacy:
            cells = [f"{100 * masked[c, label] / (seconds * SAMPLE_RATE):.1f} %" for c in conditions]
            print(f"| {label} | " + " | ".join(cells) + " |")
    if vad_audio:
        print(f"\nSilero VAD (with the filter chain): {100 * vad_cpu / vad_audio:.2f} % of one core per audio second")
    print(f"whole run {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
