"""Power cuts in a loop, at the bench's budget: tests/test_powercut_loses_nothing.py with 200 cycles.

Each cycle SIGKILLs ``birdd run`` at a random instant (a quarter during start-up, the rest while
detections are written to the outbox), checks ``PRAGMA integrity_check``, and restarts it on the same
outbox; at the end a subscriber must hold every committed detection, in order per source.

usage: python bench/powercut.py [--cycles 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pytest

TEST = Path(__file__).resolve().parents[1] / "tests" / "test_powercut_loses_nothing.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()
    os.environ["BIRDD_POWERCUT_CYCLES"] = str(args.cycles)
    started = time.perf_counter()
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(TEST)])
    import test_powercut_loses_nothing as run  # imported by pytest above, from tests/

    print(f"\npower cuts, {time.perf_counter() - started:.0f} s, pytest exit {int(code)}")
    for key, value in run.RESULTS.items():
        print(f"{key}: {value}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
