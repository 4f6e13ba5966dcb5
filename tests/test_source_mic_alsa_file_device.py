"""MicSource through real PortAudio and ALSA, without sound hardware.

A private ``.asoundrc`` defines ``birdtest``: a ``plug`` onto a ``file`` PCM whose ``infile`` is a
raw S16_LE recording (its output goes to a ``null`` PCM). ALSA reads the file unpaced, far faster
than real time, and under PortAudio's mmap access it drops whole periods now and then and repeats
the last one at the end of the file; so what arrives is a sequence of whole callback blocks, each a
contiguous stretch of the file. ALSA reads its configuration when PortAudio initialises, so the
capture runs in a subprocess with HOME pointing at the temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

MODEL_RATE = 32_000
ASOUNDRC = """
pcm.birdtest {{
    type plug
    slave {{ pcm "birdfile"  format S16_LE  rate {rate}  channels 1 }}
}}
pcm.birdfile {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
}}
"""
CAPTURE = """
import sys, time
import numpy as np
import sounddevice as sd
from daemon.config import AudioConfig
from daemon.audio.ring import RingBuffer
from daemon.audio.mic_source import MicSource

if "birdtest" not in [d["name"] for d in sd.query_devices()]:
    sys.exit(77)
ring = RingBuffer(10 * 32000)
source = MicSource(AudioConfig(device="birdtest", capture_rate=int(sys.argv[1])), ring)
source.start()
starts, blocks, total, deadline = [], [], 0, time.monotonic() + 20
while total < 3 * 32000 and time.monotonic() < deadline:
    start, block = ring.read(8000, timeout=0.5)
    if block.size:
        starts.append(start)
        blocks.append(block)
        total += block.size
status = source.status()
source.stop()
np.savez(sys.argv[2], starts=np.array(starts), sizes=np.array([b.size for b in blocks]),
         samples=np.concatenate(blocks), state=status.state, detail=status.detail)
"""


def noise_recording(rate: int) -> np.ndarray:
    """Four seconds of seeded noise: any 8 samples pin down their place in the file."""
    return np.random.default_rng(5).integers(-20_000, 20_000, 4 * rate).astype("<i2")


def tone_recording(rate: int) -> np.ndarray:
    """Four seconds of 440 Hz: a 100-ms block holds 44 whole cycles, so dropped periods leave no trace."""
    return np.round(0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(4 * rate) / rate)).astype("<i2")


def capture(tmp_path: Path, pcm: np.ndarray, file_rate: int, capture_rate: int) -> dict:
    (tmp_path / "in.raw").write_bytes(pcm.tobytes())
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(rate=file_rate, infile=tmp_path / "in.raw"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSA")}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = tmp_path / "captured.npz"
    proc = subprocess.run([sys.executable, "-c", CAPTURE, str(capture_rate), str(out)], env=env,
                          capture_output=True, text=True, timeout=60)
    if proc.returncode == 77:
        pytest.skip("PortAudio does not list the ALSA test device")
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        got = {key: data[key] for key in data.files}
    assert str(got["state"]) == "ok"
    assert str(got["detail"]) == "birdtest"
    assert got["samples"].size >= 3 * MODEL_RATE
    assert np.all(np.diff(got["starts"]) >= got["sizes"][:-1])  # stream indices only move forward
    return got


def stretches(got: dict) -> list[tuple[int, np.ndarray]]:
    """The captured samples as gap-free stretches ``(first stream index, samples)``."""
    out: list[tuple[int, np.ndarray]] = []
    for start, block in zip(got["starts"], np.split(got["samples"], np.cumsum(got["sizes"])[:-1]), strict=True):
        if out and out[-1][0] + out[-1][1].size == start:
            out[-1] = (out[-1][0], np.concatenate([out[-1][1], block]))
        else:
            out.append((int(start), block))
    return out


def test_device_at_the_model_rate_delivers_the_file_bit_exact_in_whole_blocks(tmp_path):
    pcm = noise_recording(MODEL_RATE)
    got = capture(tmp_path, pcm, MODEL_RATE, capture_rate=0)  # 0: the device's default rate, 32 kHz here
    audio = pcm.astype(np.float32) / 32768
    where = {audio[k:k + 8].tobytes(): k for k in range(audio.size - 7)}
    block = MODEL_RATE // 10  # block_ms = 100
    for _, samples in stretches(got):
        pos, pieces = 0, []
        while pos < samples.size:
            k = where[samples[pos:pos + 8].tobytes()]  # KeyError: a sample that is not from the file
            n = min(samples.size - pos, audio.size - k)
            run = np.flatnonzero(samples[pos:pos + n] != audio[k:k + n])
            n = int(run[0]) if run.size else n
            pieces.append(n)
            pos += n
        assert all(n % block == 0 for n in pieces[:-1]), pieces  # breaks only where ALSA dropped a period


def test_device_at_48k_is_resampled_in_phase_across_dropped_periods_and_gaps(tmp_path):
    got = capture(tmp_path, tone_recording(48_000), 48_000, capture_rate=48_000)
    checked = 0
    phase = None
    margin = 100  # resampler onset and tail around each gap
    for start, samples in stretches(got):
        j = start + np.arange(samples.size)
        if phase is None:  # fit the phase once, on the first stretch
            basis = np.stack([np.sin(2 * np.pi * 440 * j / MODEL_RATE), np.cos(2 * np.pi * 440 * j / MODEL_RATE)], 1)
            inner = slice(margin, -margin)
            (a, b), *_ = np.linalg.lstsq(basis[inner], samples[inner], rcond=None)
            phase = np.arctan2(b, a)
            assert np.hypot(a, b) == pytest.approx(0.5, abs=0.01)
        expected = 0.5 * np.sin(2 * np.pi * 440 * j / MODEL_RATE + phase)
        # a gap can shift a stretch by up to 1/3 sample (capture indices are rounded to model indices)
        np.testing.assert_allclose(samples[margin:-margin], expected[margin:-margin], rtol=0, atol=0.02)
        checked += max(0, samples.size - 2 * margin)
    assert checked >= 2 * MODEL_RATE
