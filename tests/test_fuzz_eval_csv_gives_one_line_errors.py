"""Odd CSVs given to ``birdd eval``: a score, or one line naming the file; never a traceback or a hang.

Refused, naming the file: not UTF-8, not CSV, no ``row_id`` first column, ragged rows, non-numeric, NaN
or infinite values, duplicate row ids or column names, rows or columns that do not match between the two
files, and labels without a positive in any column. A UTF-8 byte-order mark is accepted.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from fuzz_support import assert_one_line_error, fuzz_settings, run_cli
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

names = st.one_of(st.sampled_from(["a", "b", "c", "row_id", ""]), st.text(max_size=6))
cells = st.one_of(st.sampled_from(["0", "1", "0.5", "", "nan", "inf", "-1e400", "1e308", "x", " 1 ", '"']),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=4))


@st.composite
def csv_pair(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(submission, labels): related tables (same rows and columns, maybe damaged) or unrelated junk."""
    columns = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=3, unique=True))
    if draw(st.booleans()):
        columns = draw(st.lists(names, max_size=3))
    rows = draw(st.lists(st.sampled_from(["r1", "r2", "r3", "r4", "r1"]), max_size=5))

    def table(values: st.SearchStrategy[str]) -> bytes:
        lines = [",".join(["row_id", *columns])]
        for row in rows:
            line = [row, *(draw(values) for _ in columns)]
            if draw(st.integers(0, 9)) == 0:
                line = line[:-1]  # ragged
            lines.append(",".join(line))
        text = "\n".join(lines) + "\n"
        prefix = draw(st.sampled_from(["", "\ufeff"]))
        return (prefix + text).encode()

    numbers = st.sampled_from(["0", "0.25", "0.5", "0.75", "1"])
    submission = table(st.one_of(numbers, cells) if draw(st.booleans()) else numbers)
    labels = table(st.sampled_from(["0", "1"]) if draw(st.booleans()) else cells)
    junk = st.binary(max_size=120)
    return (draw(junk) if draw(st.integers(0, 5)) == 0 else submission,
            draw(junk) if draw(st.integers(0, 5)) == 0 else labels)


def _check(submission: bytes, labels: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sub, lab = Path(tmp) / "submission.csv", Path(tmp) / "labels.csv"
        sub.write_bytes(submission)
        lab.write_bytes(labels)
        code, stdout, stderr = run_cli("eval csv pair", "eval", str(sub), str(lab))
        if code == 0:
            score = float(stdout.splitlines()[-1].split()[2])
            assert math.isfinite(score) and 0.0 <= score <= 1.0, stdout
        else:
            assert code == 1
            assert_one_line_error(stderr, str(sub), str(lab))


@fuzz_settings(150)
@given(pair=csv_pair())
def test_fuzzed_eval_csvs(pair: tuple[bytes, bytes]) -> None:
    _check(*pair)


CASES = {
    "not_utf8": (b"row_id,a\n\xff\xfe,1\n", b"row_id,a\nx,1\ny,0\n"),
    "duplicate_columns": (b"row_id,a,a\nx,1,0\ny,0,1\n", b"row_id,a,a\nx,1,0\ny,0,1\n"),
    "no_positive_label": (b"row_id,a\nx,1\n", b"row_id,a\nx,0\n"),
    "huge_field": (b"row_id,a\nx," + b"1" * 200_000 + b"\n", b"row_id,a\nx,1\n"),
    "nul_byte": (b"row_id,a\nx\x00,1\n", b"row_id,a\nx\x00,1\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_corpus(name: str) -> None:
    """Cases that once gave a traceback or a silent wrong answer."""
    _check(*CASES[name])


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_bytes("\ufeffrow_id,a\nx,0.9\ny,0.1\n".encode())
    (tmp_path / "l.csv").write_bytes(b"row_id,a\nx,1\ny,0\n")
    code, stdout, stderr = run_cli("eval csv pair", "eval", str(tmp_path / "s.csv"), str(tmp_path / "l.csv"))
    assert code == 0 and "macro ROC-AUC 1.0000 over 1 species" in stdout, stderr
