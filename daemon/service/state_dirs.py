"""The state directories, checked at start before anything is written: each must take a small write.

A directory on a file system that is read-only or full stops ``birdd run`` at start with one line naming
the key and the directory, and exit status 1: a runtime fault, which the unit restarts after
``RestartSec`` at most ``StartLimitBurst`` times (docs/service.md, error policy). Faults that begin while
the daemon runs are held in memory and retried instead (:mod:`daemon.write_faults`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from daemon.config import Config
from daemon.errors import StorageError

PROBE_BYTES = 4096
"""what the check writes and fsyncs (one page: a full file system refuses it), then deletes"""


def state_directories(config: Config) -> dict[str, Path]:
    """Configuration key -> the directory it writes in: the outbox's, and the store's and the clips' when on."""
    directories = {"outbox.path": Path(config.outbox.path).parent}
    if config.store.enabled:
        directories["store.path"] = Path(config.store.path).parent
        if config.clips.enabled:
            directories["clips.dir"] = Path(config.clips.dir)
    return directories


def check_writable(directories: dict[str, Path]) -> None:
    """Create each directory if needed and write, fsync and delete a small file in it; raise
    :class:`StorageError` naming the first that refuses."""
    for key, directory in directories.items():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".birdd-write-check-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as probe:
                    probe.write(b"\0" * PROBE_BYTES)
                    probe.flush()
                    os.fsync(probe.fileno())
            finally:
                os.unlink(name)
        except FileExistsError:
            raise StorageError(f"{key}: {directory} is not a directory") from None
        except OSError as exc:
            raise StorageError(f"{key}: cannot write in {directory}: {exc.strerror or exc}") from None
