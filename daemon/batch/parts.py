"""``birdd replay --parts``: each task's rows written by the worker that scored it, as a Parquet part.

For outputs too big to gather through one client: ``OUT`` is a folder (a Parquet dataset) on storage every worker
can write to, and task ``k`` of the run's plan becomes ``OUT/part-<k>.parquet`` (written atomically, through a
hidden temporary sibling that Parquet readers skip). Reading the parts in name order gives the rows in input
order, the same rows and columns as ``-o OUT.parquet`` (row groups are cut per part). The client receives only
each task's :class:`PartSummary`, which is also kept in the part's metadata, so a resumed run (``--resume``)
skips the tasks whose part exists and still reports every file that failed. ``OUT/_birdd_run.json`` records
the run (model, options, files) as the resume journal does.

A file that fails in one segment keeps the rows of its other segments, as in the gathered outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from daemon.batch.formats import FileScores, for_output
from daemon.batch.recording_time import TimePattern, recording_start
from daemon.batch.segments import Segment
from daemon.batch.writers import ParquetTable, audio_seconds
from daemon.model.loader import Species

RUN_FILE = "_birdd_run.json"
"""the run's description in the parts folder (a leading underscore: Parquet readers skip it)"""
SUMMARY_KEY = "birdd.part"
"""the part's Parquet metadata key holding its :class:`PartSummary` (JSON)"""


@dataclass(frozen=True)
class PartsSpec:
    """What a worker needs to write its task's rows (small and picklable)."""

    folder: str
    fmt: str
    min_conf: float
    with_times: bool
    """whether the table has the time columns (some recording of the run has a known start)"""
    time_pattern: TimePattern | None = None
    in_range: np.ndarray | None = None


@dataclass(frozen=True)
class PartSummary:
    """What one task did: files it finished (their last segment), their audio seconds, its segments' errors."""

    files: int
    seconds: float
    errors: tuple[str, ...]

    def to_json(self) -> str:
        """The summary as kept in the part's metadata."""
        return json.dumps(asdict(self))

    @classmethod
    def read(cls, part: Path) -> PartSummary:
        """The summary kept in ``part``."""
        import pyarrow.parquet as pq

        found = json.loads(pq.read_schema(part).metadata[SUMMARY_KEY.encode()])
        return cls(found["files"], found["seconds"], tuple(found["errors"]))


def part_path(folder: Path, number: int) -> Path:
    """The part of task ``number``."""
    return folder / f"part-{number:07d}.parquet"


def write_part(spec: PartsSpec, species: list[Species], number: int,
               results: list[tuple[Segment, FileScores | str]]) -> PartSummary:
    """Write the rows of one task's scored segments into its part, with its summary; returns the summary."""
    errors = tuple(result for _, result in results if isinstance(result, str))
    scored = [(segment, result) for segment, result in results if not isinstance(result, str)]
    finished = [result for segment, result in scored if segment.is_last]
    summary = PartSummary(len(finished), sum(map(audio_seconds, finished)), errors)
    table = ParquetTable(part_path(Path(spec.folder), number), spec.fmt, species, spec.min_conf, spec.with_times,
                         metadata={SUMMARY_KEY: summary.to_json()})
    try:
        for segment, result in scored:
            start = recording_start(segment.path, spec.time_pattern) if spec.with_times else None
            table.write(for_output(result, spec.in_range, start))
    except BaseException:
        table.discard()
        raise
    table.commit()
    return summary
