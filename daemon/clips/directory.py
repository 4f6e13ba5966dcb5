"""The clips directory: file names, atomic writes, deletion, and the sweep of files nobody knows.

Layout: ``<clips.dir>/<local date>/<species>_<HHMMSS>_<id>.<ext>`` and the same name ending in
``.png`` for the spectrogram; names stored in the detection store are relative to ``clips.dir``.
A file is written under a temporary name (``.<name>.tmp``) and renamed into place, so a reader or a
crash never sees half a file under a real name; a crash may leave a temporary file, which the sweep
at start deletes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from daemon.clips.encode import EXTENSIONS
from daemon.pipeline.detection import Detection
from daemon.store.writer import ClipFiles

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".tmp"
SPECTROGRAM_EXTENSION = "png"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ClipDirectory:
    """Files under ``root``; every name handled is relative to it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names_for(self, detection: Detection, local_date: str, local_time: str, fmt: str) -> ClipFiles:
        """The clip and spectrogram names of a detection heard on ``local_date`` at ``local_time``."""
        species = _UNSAFE.sub("_", detection.species_code)[:40] or "species"
        source = f"{detection.source_name}_" if detection.source_name else ""  # a safe name (config-checked)
        stem = f"{local_date}/{source}{species}_{local_time.replace(':', '')}_{detection.detection_id[:12]}"
        return ClipFiles(f"{stem}.{EXTENSIONS[fmt]}", f"{stem}.{SPECTROGRAM_EXTENSION}")

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` atomically (temporary file, then rename); raises OSError."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}{TEMPORARY_SUFFIX}")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):  # on a read-only file system even this fails
                temporary.unlink(missing_ok=True)
            raise

    def delete(self, names: Iterable[str]) -> None:
        """Delete these files, and a day directory they leave empty. A file or directory already gone is fine:
        the sink thread (retention) and the clip worker (eviction, a failed clip) may delete in one day at once."""
        for name in names:
            path = self.root / name
            if not os.path.lexists(path):  # never written: nothing to do (unlink would fail on a read-only disk)
                continue
            try:
                path.unlink(missing_ok=True)
                if path.parent != self.root:
                    _remove_if_empty(path.parent)
            except OSError as exc:
                log.warning("clips: cannot delete %s: %s", path, exc)

    def size(self, names: Iterable[str]) -> int | None:
        """Total bytes of these files, or None if one of them is missing."""
        try:
            return sum((self.root / name).stat().st_size for name in names)
        except OSError:
            return None

    def sweep(self, keep: set[str]) -> int:
        """Delete every file under root that is not in ``keep`` (temporary files included); the count deleted."""
        if not self.root.is_dir():
            return 0
        orphans = [path.relative_to(self.root).as_posix() for path in self.root.rglob("*")
                   if path.is_file() or path.is_symlink()]
        orphans = [name for name in orphans if name not in keep]
        self.delete(orphans)
        return len(orphans)


def _remove_if_empty(directory: Path) -> None:
    """Remove ``directory`` if it is empty; one another thread removed or wrote into meanwhile is left as it is."""
    try:
        if not any(directory.iterdir()):
            directory.rmdir()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
            raise
