"""Where ``birdd replay`` writes: one writer per output format, fed segment by segment in input order.

Every writer has ``write(result)`` (the windows of one segment of a recording), ``end_file()`` (after a
recording's last segment), ``commit()`` (the output appears whole, atomically) and ``discard()``.
CSV is the default; an output ending in ``.parquet`` writes the submission or detections table as Parquet
(pyarrow) with the same columns, plus ``recording_start`` when some recording's start is known.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from daemon.atomic import AtomicWriter
from daemon.batch.formats import (
    BIRDNET_CSV_HEADER,
    DETECTIONS_COLUMNS,
    DETECTIONS_HEADER,
    DETECTIONS_HEADER_WITH_TIMES,
    TIME_COLUMNS,
    FileScores,
    RavenTable,
    absolute_times,
    audacity_labels,
    birdnet_rows,
    detection_rows,
    detections,
    raven_header,
    row_id,
    submission_header,
    submission_rows,
)
from daemon.constants import SAMPLE_RATE
from daemon.errors import BirddError
from daemon.model.loader import Species

PARQUET_SUFFIX = ".parquet"
PARQUET_FORMATS = ("submission", "detections")
ROW_GROUP_ROWS = 65_536
"""rows per Parquet row group (cut at fixed row counts, so a resumed run writes the same bytes)"""


class ReplayWriter(Protocol):
    """One output of a replay run."""

    def write(self, result: FileScores) -> None: ...

    def end_file(self) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def open_writer(fmt: str, output: Path, species: list[Species], min_conf: float, with_times: bool,
                inputs: Path) -> ReplayWriter:
    """The writer for ``fmt`` into ``output`` (Parquet when ``output`` ends in .parquet); ``inputs``: the folder
    holding every recording (Audacity label files keep their paths below it)."""
    if output.suffix.lower() == PARQUET_SUFFIX:
        if fmt not in PARQUET_FORMATS:
            raise BirddError(f"{output}: Parquet output is for --format {' or '.join(PARQUET_FORMATS)}, not {fmt}")
        return ParquetTable(output, fmt, species, min_conf, with_times)
    if fmt == "audacity":
        return AudacityFolder(output, inputs, species, min_conf)
    return CsvTable(output, fmt, species, min_conf, with_times)


def common_folder(files: list[Path]) -> Path:
    """The deepest folder holding all ``files``."""
    return Path(os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in files])) if files else Path()


class CsvTable:
    """A submission, detections, BirdNET-Analyzer or Raven table in one text file."""

    def __init__(self, output: Path, fmt: str, species: list[Species], min_conf: float, with_times: bool) -> None:
        self.fmt, self.species, self.min_conf, self.with_times = fmt, species, min_conf, with_times
        self._raven = RavenTable(min_conf, with_times)
        self._file = AtomicWriter(output)
        self._file.write({"submission": submission_header(species),
                          "detections": DETECTIONS_HEADER_WITH_TIMES if with_times else DETECTIONS_HEADER,
                          "birdnet": BIRDNET_CSV_HEADER, "raven": raven_header(with_times)}[fmt])

    def write(self, result: FileScores) -> None:
        """Append one segment's rows."""
        if self.fmt == "submission":
            self._file.write(submission_rows(result))
        elif self.fmt == "detections":
            self._file.write(detection_rows(result, self.species, self.min_conf, self.with_times))
        elif self.fmt == "birdnet":
            self._file.write(birdnet_rows(result, self.species, self.min_conf))
        else:
            self._file.write(self._raven.rows(result, self.species))

    def end_file(self) -> None:
        """A recording is done (Raven: the next one follows it on the timeline)."""
        if self.fmt == "raven":
            self._raven.end_file()

    def commit(self) -> None:
        """Put the table in place."""
        self._file.commit()

    def discard(self) -> None:
        """Leave no partial table."""
        self._file.discard()


class AudacityFolder:
    """One Audacity label file per recording, at the recording's path below the inputs' folder (``.txt`` for its
    suffix), so that recordings of one name in two folders keep a file each; each written atomically."""

    def __init__(self, output: Path, inputs: Path, species: list[Species], min_conf: float) -> None:
        self.output, self.inputs, self.species, self.min_conf = output, inputs, species, min_conf
        self._labels: AtomicWriter | None = None  # of the recording being written

    def write(self, result: FileScores) -> None:
        """Add one segment's labels to its recording's file."""
        if self._labels is None:
            self._labels = AtomicWriter(self.output / Path(os.path.abspath(result.path)).relative_to(self.inputs)
                                        .with_suffix(".txt"))
        self._labels.write(audacity_labels(result, self.species, self.min_conf))

    def end_file(self) -> None:
        """Put the recording's label file in place (none when no segment of it was scored)."""
        if self._labels is not None:
            self._labels.commit()
            self._labels = None

    def commit(self) -> None:
        """Nothing left to do: every label file is in place."""

    def discard(self) -> None:
        """The label file being written is dropped; those already in place stay (each is whole)."""
        if self._labels is not None:
            self._labels.discard()


class ParquetTable:
    """The submission or detections table as Parquet; rows are buffered into fixed-size row groups."""

    def __init__(self, output: Path, fmt: str, species: list[Species], min_conf: float, with_times: bool,
                 metadata: dict[str, str] | None = None) -> None:
        """``metadata``: key-value pairs kept in the file's schema."""
        try:  # only Parquet output needs pyarrow
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise BirddError(f"{output}: Parquet output needs pyarrow: pip install 'birdd[parquet]'") from None

        self.fmt, self.species, self.min_conf, self.with_times = fmt, species, min_conf, with_times
        self._pa = pa
        if fmt == "submission":
            fields = [pa.field("row_id", pa.string()), *(pa.field(s.code, pa.float32()) for s in species)]
        else:
            kinds = (pa.float64(), pa.float64(), pa.string(), pa.string(), pa.string(), pa.float32())
            fields = [pa.field(name, kind) for name, kind in zip(DETECTIONS_COLUMNS, kinds, strict=True)]
            fields += [pa.field(name, pa.string()) for name in TIME_COLUMNS if with_times]
        if with_times:
            fields.append(pa.field("recording_start", pa.string()))
        self.schema = pa.schema(fields, metadata=metadata)
        self._file = AtomicWriter(output, binary=True)
        self._writer = pq.ParquetWriter(self._file.file, self.schema)
        self._pending = self.schema.empty_table()

    def write(self, result: FileScores) -> None:
        """Add one segment's rows (written out a row group at a time)."""
        if self.fmt == "submission":
            columns = [[row_id(result.path, int(end)) for end in result.ends], *result.scores.T]
        else:
            rows = [(a, b, str(result.path), s.code, s.common_name, c)
                    + (tuple(t or None for t in absolute_times(result, a, b)) if self.with_times else ())
                    for a, b, s, c in detections(result, self.species, self.min_conf)]
            columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in self.schema.names]
        n = len(columns[0])
        if self.with_times:
            start = None if result.recording_start is None else result.recording_start.isoformat()
            columns = [*columns[: len(self.schema.names) - 1], [start] * n]
        table = self._pa.Table.from_arrays([self._pa.array(c, type=f.type) for c, f in zip(columns, self.schema,
                                                                                            strict=True)],
                                           schema=self.schema)
        self._pending = self._pa.concat_tables([self._pending, table])
        while self._pending.num_rows >= ROW_GROUP_ROWS:
            self._writer.write_table(self._pending.slice(0, ROW_GROUP_ROWS))
            self._pending = self._pending.slice(ROW_GROUP_ROWS)

    def end_file(self) -> None:
        """Rows do not depend on where a recording ends."""

    def commit(self) -> None:
        """Write the last rows and the footer, and put the file in place."""
        self._writer.write_table(self._pending)
        self._writer.close()
        self._file.commit()

    def discard(self) -> None:
        """Leave no partial file."""
        self._writer.close()
        self._file.discard()


def audio_seconds(result: FileScores) -> float:
    """Audio covered by a file's windows (seconds)."""
    return float(result.ends[-1]) / SAMPLE_RATE if len(result.ends) else 0.0
