"""Shared by the fuzz tests: the budget, the count of inputs tried by kind, a hang guard, the CLI check.

The in-suite budget is small; ``bench/robustness.py fuzz`` multiplies it with ``BIRDD_FUZZ_SCALE``. Every
example is counted in :data:`TRIED` under its kind, so the bench can print the figures table.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from daemon.cli import cli

TRIED: Counter[str] = Counter()
"""inputs tried, by kind (config, bundle, audio, audio via replay, eval csv pair)"""

HANG_S = 30
"""an input that keeps a parser busy this long counts as a hang"""


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings: ``examples`` times ``BIRDD_FUZZ_SCALE`` (default 1), derandomized (repeatable)."""
    scale = float(os.environ.get("BIRDD_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, int(examples * scale)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


class Hang(BaseException):
    """An input took longer than :data:`HANG_S` (BaseException: no ``except Exception`` swallows it)."""


@contextmanager
def no_hang(what: str, seconds: int = HANG_S) -> Iterator[None]:
    """Raise :class:`Hang` naming ``what`` if the block runs longer than ``seconds`` (main thread only)."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"{what}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(kind: str, *args: str) -> tuple[int, str, str]:
    """``birdd ARGS`` in-process; returns ``(exit code, stdout, stderr)``. Fails on a traceback or a hang.

    Counts the input under ``kind``.
    """
    TRIED[kind] += 1
    with no_hang(f"birdd {' '.join(args)}"):
        result = CliRunner().invoke(cli, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"birdd {' '.join(args)}: traceback ({result.exception!r})") from result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(stderr: str, *names: str) -> None:
    """The last stderr line is ``birdd: error: ...`` naming one of ``names``, and nothing looks like a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("birdd: error: ")]
    assert len(lines) == 1, f"expected one 'birdd: error:' line, got:\n{stderr}"
    assert any(name in lines[0] for name in names), f"{lines[0]!r} names none of {names}"


def toml_document(tables: dict[str, Any]) -> str:
    """``tables`` as TOML: top-level tables as ``[section]``, anything else as a top-level key or inline value."""
    plain = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in tables.items() if not isinstance(v, dict)]
    sections = [f"[{_toml_key(k)}]\n" + "".join(f"{_toml_key(key)} = {_toml_value(value)}\n"
                                                for key, value in v.items())
                for k, v in tables.items() if isinstance(v, dict)]
    return "\n".join(plain) + "\n" + "\n".join(sections)


def _toml_key(key: str) -> str:
    return json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)
