"""The fuzz tests at a large budget: bad inputs tried by kind, tracebacks and hangs.

Runs tests/test_fuzz_*.py in this process with ``BIRDD_FUZZ_SCALE`` (the in-suite budget times SCALE)
and prints the counts that tests/fuzz_support.py kept. A traceback or a hang fails a test, so the
figures are "N tried, 0 tracebacks, 0 hangs" exactly when pytest passes.

usage: python bench/fuzz.py [--scale 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=50.0, help="multiplier of the in-suite example budgets")
    args = parser.parse_args()
    os.environ["BIRDD_FUZZ_SCALE"] = str(args.scale)
    started = time.perf_counter()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *map(str, sorted(TESTS.glob("test_fuzz_*.py")))])
    import fuzz_support  # imported by the tests above, from tests/

    elapsed = time.perf_counter() - started
    failed = int(code) != 0
    print(f"\nfuzz, scale {args.scale:g}, {elapsed:.0f} s: pytest exit {int(code)}")
    print("| kind | inputs tried | tracebacks | hangs |")
    print("|---|---|---|---|")
    for kind, count in sorted(fuzz_support.TRIED.items()):
        print(f"| {kind} | {count} | {'see failures' if failed else 0} | {'see failures' if failed else 0} |")
    print(f"| total | {sum(fuzz_support.TRIED.values())} | | |")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
