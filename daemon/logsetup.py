"""The one logging setup: plain lines on stderr, journald-friendly."""

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import ClassVar

from tqdm.contrib.logging import logging_redirect_tqdm

QUIET_LIBRARIES = ("gensim", "numba", "faiss")
"""Third-party loggers that narrate every step at INFO: kept at WARNING."""


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once.

    Under systemd (``JOURNAL_STREAM`` set) lines carry a ``<N>`` syslog priority prefix and no
    timestamp, since journald adds its own; elsewhere they carry a timestamp.
    """
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextlib.contextmanager
def progress_logging(bars: bool) -> Iterator[None]:
    """While progress bars are shown (``bars``), log lines are written above them (through tqdm) instead of
    breaking them; the handler's format stays the one :func:`setup_logging` chose."""
    with logging_redirect_tqdm() if bars else contextlib.nullcontext():
        yield


class _JournalFormatter(logging.Formatter):
    _PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2,
    }

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self._PRIORITY.get(record.levelno, 6)}>{super().format(record)}"
