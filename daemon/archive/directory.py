"""The archive's files: names, atomic writes, the disk cap (oldest deleted first), the free-space floor.

Layout: ``<archive.dir>/<UTC date>/<input>_<YYYYMMDD_HHMMSS>.flac``, the time (UTC) of the file's first
sample, named as Song Meter recorders name theirs (with several ``[[audio.sources]]``, each source's files
are under a folder of its name: ``<archive.dir>/<source name>/<UTC date>/...``; the cap and the free-space
floor hold for all of them together, the oldest file of any source deleted first), so that ``birdd replay``
and ``birdd distill`` read the recording time back (:mod:`daemon.batch.recording_time`). A file is written through
:class:`~daemon.atomic.AtomicWriter` (a temporary sibling, fsynced, renamed): a reader or a power cut never
sees half a file under its name, and the temporary file a kill may leave is deleted at the next start.

Nothing here raises while the daemon runs: a full or read-only disk is counted, and logged as the outbox,
the store and the clips log theirs (:class:`~daemon.write_faults.WriteFault`: one line when writes start to
fail, one when they work again); the audio of that moment is not kept, nor that of pieces that come before
the back-off allows another try.
"""

from __future__ import annotations

import bisect
import logging
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.archive.sampler import ArchivePiece
from daemon.atomic import AtomicWriter, remove_temporaries
from daemon.batch.recording_time import recording_start
from daemon.clips.encode import encode_clip
from daemon.clips.policy import MB, DiskUsage, leaves_free_space
from daemon.config import ArchiveConfig
from daemon.constants import SAMPLE_RATE
from daemon.write_faults import WriteFault

log = logging.getLogger(__name__)

FORMAT = "flac"
"""lossless: the teacher of a later distillation hears what the station heard"""
SOURCE_CHARS = 40
"""at most this many characters of the input's name go into a file name"""
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
_FILE_NAME = re.compile(rf"^[A-Za-z0-9-]+_\d{{8}}_\d{{6}}\.{FORMAT}$")
"""what the archive writes, and so all it ever deletes"""


@dataclass
class ArchiveCounters:
    """What happened to the archive's audio since start."""

    written: int = 0
    """files written"""
    bytes_written: int = 0
    deleted_cap: int = 0
    """files deleted, oldest first, to stay within ``archive.max_total_mb``"""
    skipped_disk: int = 0
    """pieces not written: below the free-space floor"""
    failed: int = 0
    """pieces not written: encoding or file-system errors (full or read-only disk)"""
    skipped_unwritable: int = 0
    """pieces not written: the archive could not be written, and the back-off allowed no try yet"""
    too_short: int = 0
    """pieces shorter than one window, not written (a gap or a start just before the minute's end)"""
    dropped_busy: int = 0
    """pieces dropped because the archive thread was still writing earlier ones"""
    not_written_at_stop: int = 0
    """pieces still queued when the daemon stopped"""


def file_name(piece: ArchivePiece) -> str:
    """``[<source name>/]<UTC date>/<input>_<YYYYMMDD_HHMMSS>.flac`` for a piece, relative to the archive's
    directory."""
    start = datetime.fromtimestamp(piece.start_time, UTC)
    source = _UNSAFE.sub("-", Path(piece.source).stem).strip("-")[:SOURCE_CHARS] or "audio"
    folder = f"{piece.source_name}/" if piece.source_name else ""
    return f"{folder}{start:%Y-%m-%d}/{source}_{start:%Y%m%d_%H%M%S}.{FORMAT}"


class ArchiveDirectory:
    """The archive's files under ``config.dir``, indexed by recording time."""

    def __init__(self, config: ArchiveConfig, counters: ArchiveCounters,
                 disk_usage: DiskUsage = shutil.disk_usage) -> None:
        self.root = Path(config.dir)
        self._config = config
        self.counters = counters
        self._disk_usage = disk_usage
        self._cap_bytes = int(config.max_total_mb * MB)
        self._files: list[tuple[float, str, int]] = []  # (recording time, name, bytes), oldest first
        self._fault = WriteFault(f"archive {self.root}", "not keeping the audio (counted in archive.failed and "
                                                         "archive.skipped_unwritable)")
        self.total_bytes = 0

    @property
    def files(self) -> int:
        """Files in the archive."""
        return len(self._files)

    @property
    def error(self) -> str:
        """Why the last write failed ("" while writes succeed)."""
        return self._fault.error

    def open(self) -> None:
        """At start: make the directory, delete what a killed write left, index the files (logged, never raised)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            leftovers = remove_temporaries(self.root)
            for path in self.root.rglob(f"*.{FORMAT}"):
                started = recording_start(path)
                if _FILE_NAME.match(path.name) and started is not None:
                    self._files.append((started.timestamp(), path.relative_to(self.root).as_posix(),
                                        path.stat().st_size))
        except OSError as exc:
            self._fault.failed(exc)
            return
        self._files.sort()
        self.total_bytes = sum(nbytes for _, _, nbytes in self._files)
        log.info("archive %s: %d file(s), %.1f MB; %d unfinished file(s) deleted", self.root, len(self._files),
                 self.total_bytes / MB, leftovers)

    def write(self, piece: ArchivePiece) -> bool:
        """Encode and write one piece within the cap; False if it was not written (counted)."""
        if not self._fault.due():
            self.counters.skipped_unwritable += 1
            return False
        name = file_name(piece)
        try:
            data = encode_clip(piece.samples, SAMPLE_RATE, FORMAT)
            if len(data) > self._cap_bytes or not leaves_free_space(self.root, len(data), self._config.min_free_mb,
                                                                    self._disk_usage):
                self.counters.skipped_disk += 1
                return False
            self._forget(name)  # the same input and second again (after a gap): replaced
            while self._files and self.total_bytes + len(data) > self._cap_bytes:
                self._delete_oldest()
            with AtomicWriter(self.root / name, binary=True) as out:
                out.write(data)
        except OSError as exc:  # the directory: full, read-only, I/O error
            self.counters.failed += 1
            self._fault.failed(exc)
            return False
        except (ValueError, RuntimeError) as exc:  # encoding: soundfile raises RuntimeError
            self.counters.failed += 1
            log.warning("archive: cannot encode %s: %s", name, exc)
            return False
        bisect.insort(self._files, (piece.start_time, name, len(data)))
        self.total_bytes += len(data)
        self.counters.written += 1
        self.counters.bytes_written += len(data)
        self._fault.succeeded(f"{self.counters.failed + self.counters.skipped_unwritable} piece(s) not kept since "
                              "start")
        return True

    def _delete_oldest(self) -> None:
        _, name, nbytes = self._files[0]
        path = self.root / name
        path.unlink(missing_ok=True)  # OSError: the caller counts the piece as failed; the index stays true
        self._files.pop(0)
        self.total_bytes -= nbytes
        self.counters.deleted_cap += 1
        for folder in (path.parent, path.parent.parent):  # the day's folder, then the source's, once empty
            if folder == self.root or any(folder.iterdir()):
                break
            folder.rmdir()

    def _forget(self, name: str) -> None:
        for entry in self._files:
            if entry[1] == name:
                self._files.remove(entry)
                self.total_bytes -= entry[2]
                return
