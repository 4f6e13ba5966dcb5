"""The robustness tests at the bench's budget, with their figures.

  fuzz      tests/test_fuzz_*.py with each example budget times BUDGET (default 50): bad inputs tried by kind
  powercut  tests/test_powercut_loses_nothing.py with BUDGET kill cycles (default 200)
  load      tests/test_load_keeps_memory_bounded.py with a burst of BUDGET detections (default 10,000)

A traceback, a hang, a lost detection or unbounded memory fails the test, so a figure stands only
when pytest's exit is 0.

usage: python bench/robustness.py fuzz|powercut|load [--budget N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1] / "tests"
RUNS = {  # name -> (environment variable, default budget, test file glob, module holding the figures, its dict)
    "fuzz": ("BIRDD_FUZZ_SCALE", 50, "test_fuzz_*.py", "fuzz_support", "TRIED"),
    "powercut": ("BIRDD_POWERCUT_CYCLES", 200, "test_powercut_loses_nothing.py", "test_powercut_loses_nothing",
                 "RESULTS"),
    "load": ("BIRDD_BURST_DETECTIONS", 10_000, "test_load_keeps_memory_bounded.py", "test_load_keeps_memory_bounded",
             "RESULTS"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", choices=sorted(RUNS))
    parser.add_argument("--budget", type=float, help="see above for each run's meaning and default")
    args = parser.parse_args()
    variable, default, pattern, module, figures = RUNS[args.run]
    budget = args.budget if args.budget is not None else default
    os.environ[variable] = str(int(budget) if float(budget).is_integer() else budget)
    started = time.perf_counter()
    code = int(pytest.main(["-q", "-p", "no:cacheprovider", *map(str, sorted(TESTS.glob(pattern)))]))
    results = getattr(importlib.import_module(module), figures)  # imported by the tests above, from tests/
    print(f"\n{args.run}, {variable}={os.environ[variable]}, {time.perf_counter() - started:.0f} s, pytest exit {code}")
    for key, value in sorted(results.items()):
        print(f"  {key}: {value}")
    if args.run == "fuzz":
        print(f"  total: {sum(results.values())}")
    return code


if __name__ == "__main__":
    sys.exit(main())
