"""Which voice-activity detector for the privacy filter: the share of frames each calls speech on espeak-ng speech
and on sounds that are not speech (bird-like sweeps, white and pink noise, an engine hum), and its CPU.

Silero VAD as the daemon runs it (:class:`daemon.filters.voice.SileroVoice`); webrtcvad too when installed
(``pip install webrtcvad-wheels``; not a dependency of birdd), at aggressiveness 1 and 3, 30-ms frames.

usage: python bench/vad_choice.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from daemon.constants import SAMPLE_RATE
from daemon.filters.voice import STEP, SileroVoice

SECONDS = 20


def signals(rng: np.random.Generator) -> dict[str, np.ndarray]:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (make apt)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        text = "Good morning. Could you bring the ladder over here, we need to fix the gate before the rain comes."
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        speech, rate = sf.read(path, dtype="float32")
    speech = np.tile(soxr.resample(speech, rate, SAMPLE_RATE), 4)[: SECONDS * SAMPLE_RATE]
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    sweeps = 0.3 * np.sin(2 * np.pi * (3000 * t + 1500 * (t % 0.4) ** 2 / 0.4)) * ((t % 1.0) < 0.4)
    spectrum = np.fft.rfft(rng.standard_normal(t.size))
    pink = np.fft.irfft(spectrum / np.sqrt(np.arange(1, spectrum.size + 1)), t.size)
    hum = 0.2 * np.sin(2 * np.pi * 90 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return {"speech": 0.5 * speech, "speech -20 dB": 0.05 * speech, "bird-like sweeps": sweeps,
            "white noise": 0.1 * rng.standard_normal(t.size), "pink noise": 0.1 * pink / pink.std(),
            "engine hum": hum}


def silero(audio: np.ndarray) -> tuple[float, float]:
    voice = SileroVoice(0.5)
    started = time.process_time()
    spans = voice.push(0, audio.astype(np.float32))
    return len(spans) * STEP / audio.size, time.process_time() - started


def webrtc(audio: np.ndarray, aggressiveness: int) -> tuple[float, float]:
    import webrtcvad
    vad, n = webrtcvad.Vad(aggressiveness), 30 * SAMPLE_RATE // 1000
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    started = time.process_time()
    frames = [vad.is_speech(pcm[i: i + n].tobytes(), SAMPLE_RATE) for i in range(0, pcm.size - n + 1, n)]
    return float(np.mean(frames)), time.process_time() - started


def main() -> int:
    detectors = {"Silero VAD (threshold 0.5)": silero}
    try:
        import webrtcvad  # noqa: F401
        detectors |= {"webrtcvad, aggressiveness 1": lambda a: webrtc(a, 1),
                      "webrtcvad, aggressiveness 3": lambda a: webrtc(a, 3)}
    except ImportError:
        print("webrtcvad not installed (pip install webrtcvad-wheels): Silero only\n")
    sounds = signals(np.random.default_rng(0))
    print(f"share of frames called speech, {SECONDS} s of each; CPU per audio second\n")
    print("| detector | " + " | ".join(sounds) + " | CPU |")
    print("|---" * (len(sounds) + 2) + "|")
    for name, detect in detectors.items():
        cells, cpu = [], 0.0
        for audio in sounds.values():
            share, seconds = detect(audio)
            cells.append(f"{100 * share:.0f} %")
            cpu += seconds
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * cpu / (SECONDS * len(sounds)):.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
