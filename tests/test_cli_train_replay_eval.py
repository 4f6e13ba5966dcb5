"""The CLI end to end, as a subprocess: synth -> train -> replay (all formats) -> eval."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def birdd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("birdd")
    proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"birdd {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_synth_train_replay_eval(tmp_path):
    corpus = tmp_path / "corpus"
    birdd("synth", corpus, "--species", "5", "--seconds", "20", "--seed", "7")
    assert "SYNTHETIC" in (corpus / "README.md").read_text()
    birdd("train", corpus, "-o", tmp_path / "model", "--codebook-size", "64", "--no-progress")
    assert "species  5" in birdd("info", tmp_path / "model").stdout

    sub = tmp_path / "sub.csv"
    proc = birdd("replay", corpus / "test_soundscapes", "-m", tmp_path / "model", "-o", sub, "-j", "2")
    rows = list(csv.reader(sub.open()))
    assert rows[0] == ["row_id", "syn01", "syn02", "syn03", "syn04", "syn05"]
    assert [r[0] for r in rows[1:5]] == ["syn_test_000_5", "syn_test_000_10", "syn_test_000_15", "syn_test_000_20"]
    assert len(rows) == 1 + 4 * 4
    assert "real time" in proc.stderr

    out = birdd("eval", sub, corpus / "test_soundscapes_labels.csv", "--per-species").stdout
    score = float(out.strip().splitlines()[-1].split()[2])
    assert score > 0.8, out

    for fmt, name in [("detections", "det.csv"), ("raven", "sel.txt"), ("audacity", "labels")]:
        birdd("replay", corpus / "test_soundscapes", "-m", tmp_path / "model", "-o", tmp_path / name,
              "--format", fmt, "--min-conf", "0.3")
    assert (tmp_path / "det.csv").read_text().startswith("start_s,end_s,file,species_code")
    assert (tmp_path / "sel.txt").read_text().startswith("Selection\tView")
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["syn_test_000.txt", "syn_test_001.txt",
                                                                       "syn_test_002.txt", "syn_test_003.txt"]


def test_bad_file_is_listed_and_the_rest_is_written(trained_model, synthetic_corpus, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(synthetic_corpus / "test_soundscapes", folder)
    (folder / "broken.ogg").write_bytes(b"not audio at all" * 10)
    sub = tmp_path / "sub.csv"
    proc = birdd("replay", folder, "-m", trained_model, "-o", sub, check=False)
    assert proc.returncode == 1
    assert "broken.ogg: cannot decode audio" in proc.stderr
    assert len(sub.read_text().splitlines()) == 1 + 2 * 4


def test_errors_are_one_line(trained_model, tmp_path):
    proc = birdd("replay", tmp_path / "absent", "-m", trained_model, "-o", tmp_path / "x.csv", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert "absent: no such file or folder" in proc.stderr
    proc = birdd("eval", tmp_path / "none.csv", tmp_path / "labels.csv", check=False)
    assert proc.returncode == 1 and "none.csv: no such file" in proc.stderr
    proc = birdd("train", tmp_path, "-o", tmp_path / "m", check=False)
    assert proc.returncode == 1 and "taxonomy.csv: no such file" in proc.stderr


@pytest.mark.parametrize(("output", "extra", "named"), [
    ("/proc/x/out.csv", (), "/proc/x"),
    ("/proc/x/out.parquet", (), "/proc/x"),
    ("/proc/x/labels", ("--format", "audacity"), "/proc/x"),
    ("/proc/x/parts", ("--format", "detections", "--parts"), "/proc/x"),
    ("/proc/x/out.csv", ("--resume",), "/proc/x"),  # the resume journal beside OUT
    ("/proc/self/out.csv", (), "/proc/self/.out.csv."),  # the folder exists, its temporary file cannot be made
])
def test_an_output_that_cannot_be_written_is_one_line(trained_model, synthetic_corpus, output, extra, named):
    proc = birdd("replay", synthetic_corpus / "test_soundscapes", "-m", trained_model, "-o", output, *extra,
                 check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"birdd: error: {output}: cannot write ({named}"), proc.stderr
