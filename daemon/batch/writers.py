"""Where ``birdd replay`` writes: one writer per output format, fed file by file in input order.

Every writer has ``write(result)``, ``commit()`` (the output appears whole, atomically) and ``discard()``.
CSV is the default; an output ending in ``.parquet`` writes the submission or detections table as Parquet
(pyarrow) with the same columns, plus ``recording_start`` when some recording's start is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from daemon.atomic import AtomicWriter
from daemon.batch.formats import (
    DETECTIONS_COLUMNS,
    DETECTIONS_HEADER,
    DETECTIONS_HEADER_WITH_TIMES,
    TIME_COLUMNS,
    FileScores,
    RavenTable,
    absolute_times,
    audacity_labels,
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

    def commit(self) -> None: ...

    def discard(self) -> None: ...


def open_writer(fmt: str, output: Path, species: list[Species], min_conf: float, with_times: bool) -> ReplayWriter:
    """The writer for ``fmt`` into ``output`` (Parquet when ``output`` ends in .parquet)."""
    if output.suffix.lower() == PARQUET_SUFFIX:
        if fmt not in PARQUET_FORMATS:
            raise BirddError(f"{output}: Parquet output is for --format {' or '.join(PARQUET_FORMATS)}, not {fmt}")
        return ParquetTable(output, fmt, species, min_conf, with_times)
    if fmt == "audacity":
        return AudacityFolder(output, species, min_conf)
    return CsvTable(output, fmt, species, min_conf, with_times)


class CsvTable:
    """A submission, detections or Raven table in one text file."""

    def __init__(self, output: Path, fmt: str, species: list[Species], min_conf: float, with_times: bool) -> None:
        self.fmt, self.species, self.min_conf, self.with_times = fmt, species, min_conf, with_times
        self._raven = RavenTable(min_conf, with_times)
        self._file = AtomicWriter(output)
        self._file.write({"submission": submission_header(species),
                          "detections": DETECTIONS_HEADER_WITH_TIMES if with_times else DETECTIONS_HEADER,
                          "raven": raven_header(with_times)}[fmt])

    def write(self, result: FileScores) -> None:
        """Append one file's rows."""
        if self.fmt == "submission":
            self._file.write(submission_rows(result))
        elif self.fmt == "detections":
            self._file.write(detection_rows(result, self.species, self.min_conf, self.with_times))
        else:
            self._file.write(self._raven.rows(result, self.species))

    def commit(self) -> None:
        """Put the table in place."""
        self._file.commit()

    def discard(self) -> None:
        """Leave no partial table."""
        self._file.discard()


class AudacityFolder:
    """One Audacity label file per recording, each written atomically as it comes."""

    def __init__(self, output: Path, species: list[Species], min_conf: float) -> None:
        self.output, self.species, self.min_conf = output, species, min_conf

    def write(self, result: FileScores) -> None:
        """Write one recording's label file."""
        labels = AtomicWriter(self.output / f"{result.path.stem}.txt")
        labels.write(audacity_labels(result, self.species, self.min_conf))
        labels.commit()

    def commit(self) -> None:
        """Nothing left to do: every label file is in place."""

    def discard(self) -> None:
        """Label files already written stay (each is whole)."""


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
        """Add one file's rows (written out a row group at a time)."""
        if self.fmt == "submission":
            columns = [[row_id(result.path, int(end)) for end in result.ends], *result.scores.T]
        else:
            rows = [(a, b, str(result.path), s.code, s.common_name, c)
                    + (absolute_times(result, a, b) if self.with_times else ())
                    for a, b, s, c in detections(result, self.species, self.min_conf)]
            columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in self.schema.names]
        n = len(columns[0])
        if self.with_times:
            start = "" if result.recording_start is None else result.recording_start.isoformat()
            columns = [*columns[: len(self.schema.names) - 1], [start] * n]
        table = self._pa.Table.from_arrays([self._pa.array(c, type=f.type) for c, f in zip(columns, self.schema,
                                                                                            strict=True)],
                                           schema=self.schema)
        self._pending = self._pa.concat_tables([self._pending, table])
        while self._pending.num_rows >= ROW_GROUP_ROWS:
            self._writer.write_table(self._pending.slice(0, ROW_GROUP_ROWS))
            self._pending = self._pending.slice(ROW_GROUP_ROWS)

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
