"""Bad audio files and datasets give one clear error naming the file and field."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.files import find_audio_files, read_audio
from daemon.errors import AudioError, DatasetError
from trainer.dataset import load_dataset


def test_audio_is_mono_float32_at_32k(tmp_path, rng):
    stereo = rng.standard_normal((48000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "s.flac", stereo, 48000)
    audio = read_audio(tmp_path / "s.flac")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 32000) <= 1


@pytest.mark.parametrize(("content", "message"), [
    (b"", "cannot decode"),
    (b"this is not audio" * 50, "cannot decode"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.ogg"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=rf"bad\.ogg: {message}"):
        read_audio(path)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root needs setpriv (util-linux)")
def test_a_file_without_read_permission_says_so(tmp_path, rng):
    path = tmp_path / "locked.wav"
    sf.write(path, rng.standard_normal(3200).astype(np.float32) * 0.1, 32000)
    path.chmod(0)
    check = ("import sys; from daemon.audio.files import read_audio; from daemon.errors import AudioError\n"
             "try: read_audio(sys.argv[1])\nexcept AudioError as exc: print(exc)")
    as_root = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",  # without root's way past permissions
               "--inh-caps=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    result = subprocess.run([*as_root, sys.executable, "-c", check, str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == f"{path}: cannot open (Permission denied)", result.stderr


def test_empty_truncated_and_missing(tmp_path, rng):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 32000)
    with pytest.raises(AudioError, match=r"empty\.wav: no audio samples"):
        read_audio(tmp_path / "empty.wav")
    sf.write(tmp_path / "t.flac", rng.standard_normal(64000).astype(np.float32) * 0.1, 32000)
    data = (tmp_path / "t.flac").read_bytes()
    (tmp_path / "t.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"t\.flac: cannot decode"):
        read_audio(tmp_path / "t.flac")
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="no such file or folder"):
        find_audio_files([tmp_path / "absent"])


def test_dataset_errors_name_file_and_field(synthetic_corpus, tmp_path):
    import shutil

    root = shutil.copytree(synthetic_corpus, tmp_path / "d")
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(tmp_path / "none")
    train_csv = root / "train.csv"
    original = train_csv.read_text()
    train_csv.write_text(original.replace("syn01/syn01_000.ogg", "syn01/missing.ogg", 1))
    with pytest.raises(DatasetError, match=r"train\.csv:2: filename 'syn01/missing\.ogg' not found"):
        load_dataset(root)
    train_csv.write_text(original.replace("syn01,", "zzz,", 1))
    with pytest.raises(DatasetError, match=r"train\.csv:2: primary_label 'zzz' is not in taxonomy\.csv"):
        load_dataset(root)
    train_csv.write_text("label,filename\n")
    with pytest.raises(DatasetError, match=r"train\.csv: missing column\(s\) primary_label"):
        load_dataset(root)
