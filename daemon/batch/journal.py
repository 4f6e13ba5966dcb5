"""The resume journal of ``birdd replay -o OUT --resume``: scored segments kept next to the output.

``OUT.parts/index.json`` records what the run is (model digest, options, the list of files); each scored
segment's window scores (or its error) go to ``OUT.parts/<position>.npz``, numbered in the run's plan of
segments (a long recording is several). Both are written atomically, so a run killed at any moment leaves only
whole parts. A resumed run checks the index, reuses the parts and scores the rest; the output is written from
the same numbers in the same order, so it is byte-identical to an uninterrupted run's. The journal is removed
once the output is in place.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from daemon.atomic import AtomicWriter
from daemon.batch.formats import FileScores
from daemon.errors import ResumeError
from daemon.filters.stats import FilterStats

log = logging.getLogger(__name__)

INDEX = "index.json"


def journal_dir(output: Path) -> Path:
    """Where the journal of ``output`` lives."""
    return output.with_name(output.name + ".parts")


def files_digest(paths: list[Path]) -> str:
    """A digest of the list of input files (order included)."""
    return hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]


def record_run(index: Path, run: dict[str, Any]) -> bool:
    """Record the run described by ``run`` (JSON-able) in ``index``, atomically; if ``index`` exists, check that it
    records the same run (:class:`ResumeError` naming what differs) and return True."""
    if not index.is_file():
        writer = AtomicWriter(index)
        writer.write(json.dumps({"run": run}, indent=1, sort_keys=True) + "\n")
        writer.commit()
        return False
    try:
        recorded = json.loads(index.read_text())["run"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(f"{index}: unreadable; remove {index.parent} to start over") from None
    changed = [f"{key} {recorded.get(key)!r} -> {run.get(key)!r}" for key in sorted(set(run) | set(recorded))
               if recorded.get(key) != run.get(key)]
    if changed:
        raise ResumeError(f"{index.parent}: cannot resume, this run differs from the interrupted one "
                          f"({'; '.join(changed)}); run without --resume or remove the folder")
    return True


class ResumeJournal:
    """Scored segments of one run, by position in its plan."""

    def __init__(self, output: Path, run: dict[str, Any]) -> None:
        """Open the journal of ``output`` for the run described by ``run`` (JSON-able), creating it if needed;
        raises :class:`ResumeError` when an existing journal belongs to a run with other settings."""
        self.folder = journal_dir(output)
        if record_run(self.folder / INDEX, run):
            log.info("resuming: %d scored segment(s) in %s", len(list(self.folder.glob("*.npz"))), self.folder)

    def has(self, position: int) -> bool:
        """Whether the segment at ``position`` is scored."""
        return self._part(position).is_file()

    def load(self, position: int, path: Path) -> FileScores | str:
        """The journalled result of the segment at ``position`` of ``path`` (scores, or its error message)."""
        with np.load(self._part(position), allow_pickle=False) as part:
            if "error" in part:
                return str(part["error"])
            stats = FilterStats(**json.loads(str(part["filter_stats"]))) if "filter_stats" in part else None
            return FileScores(path, part["starts"], part["ends"], part["scores"], filter_stats=stats)

    def save(self, position: int, result: FileScores | str) -> None:
        """Journal the result of the segment at ``position``, atomically."""
        buffer = io.BytesIO()
        if isinstance(result, str):
            np.savez(buffer, error=np.array(result))
        else:
            stats = {} if result.filter_stats is None else {
                "filter_stats": np.array(json.dumps(asdict(result.filter_stats)))}
            np.savez(buffer, starts=result.starts, ends=result.ends, scores=result.scores, **stats)
        writer = AtomicWriter(self._part(position), binary=True)
        writer.write(buffer.getvalue())
        writer.commit()

    def remove(self) -> None:
        """Delete the journal (the run is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _part(self, position: int) -> Path:
        return self.folder / f"{position:07d}.npz"
