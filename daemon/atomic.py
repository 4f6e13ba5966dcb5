"""Atomic file writes, the one way the project replaces a file: a temporary sibling, fsynced, renamed over."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}$")
"""the name of an :class:`AtomicWriter`'s temporary file: ``.<target name>.`` and ``mkstemp``'s 8 random characters"""


class AtomicWriter:
    """Write ``path`` through a temporary sibling that :meth:`commit` renames over it (readers see old or new).

    Used as a context manager it commits on success and discards on an exception; ``binary`` opens the
    temporary file in ``"wb"`` mode (for ``np.save``), otherwise text, UTF-8, no newline translation.
    ``durable=False`` skips the fsyncs (readers still see the old file or the new one, but a power cut may
    leave the old one): for a file replaced every few seconds whose next version comes soon anyway.
    """

    def __init__(self, path: str | Path, *, binary: bool = False, durable: bool = True) -> None:
        self.path = Path(path)
        self._durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._tmp = Path(name)
        try:
            os.fchmod(fd, _mode_for(self.path))  # mkstemp makes 0600: give the file the mode open() would
        except OSError:
            os.close(fd)
            self._tmp.unlink(missing_ok=True)
            raise
        self.file: IO = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")

    def write(self, data: str | bytes) -> None:
        """Append ``data``."""
        self.file.write(data)

    def commit(self) -> Path:
        """Flush, fsync and rename into place; the directory entry is fsynced too (unless not ``durable``)."""
        self.file.flush()
        if self._durable:
            os.fsync(self.file.fileno())
        self.file.close()
        self._tmp.replace(self.path)
        if self._durable:
            fsync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (the target is left as it was)."""
        self.file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _mode_for(path: Path) -> int:
    """The mode of the file being replaced, else what ``open()`` would create: 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read from /proc (``os.umask`` can only read it by setting it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022  # the usual one, where /proc is not mounted


def fsync_directory(directory: str | Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temporaries(directory: str | Path) -> int:
    """Delete the temporary files that writers killed before :meth:`AtomicWriter.commit` left anywhere under
    ``directory``; the count deleted (raises OSError)."""
    leftovers = [path for path in Path(directory).rglob(".*") if _TEMPORARY.match(path.name) and path.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)
