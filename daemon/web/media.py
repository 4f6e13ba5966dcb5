"""Opening a detection's clip or spectrogram: the only way a request reaches the file system.

The file name comes from the store, never from the request (the request gives an integer id). It is
still treated as hostile: it is walked component by component from the clips folder with ``O_NOFOLLOW``
(no ``..``, no absolute path, no symbolic link at any level), and only a regular file with a known
audio or image extension is served.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.web.params import NotFound


class MediaMissing(NotFound):
    """The store names a file that is not (or not yet) on disk."""

MEDIA_TYPES = {".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/ogg", ".oga": "audio/ogg",
               ".wav": "audio/wav", ".mp3": "audio/mpeg", ".png": "image/png"}
AUDIO_SUFFIXES = frozenset(s for s, t in MEDIA_TYPES.items() if t.startswith("audio/"))
IMAGE_SUFFIXES = frozenset(s for s, t in MEDIA_TYPES.items() if t.startswith("image/"))


@dataclass
class OpenMedia:
    """An open clip or spectrogram: the caller sends ``size`` bytes from ``fd`` and closes it."""

    fd: int
    size: int
    content_type: str
    name: str

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def open_media(clips_dir: Path, relative: str | None, suffixes: frozenset[str], what: str) -> OpenMedia:
    """Open ``relative`` (as stored for a detection) under ``clips_dir``; :class:`NotFound` for anything else."""
    if not relative:
        raise NotFound(f"no {what} kept for this detection")
    parts = relative.split("/")
    suffix = os.path.splitext(parts[-1])[1].lower()
    if suffix not in suffixes or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise NotFound(f"no {what} kept for this detection")
    try:
        folder = os.open(clips_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise NotFound(f"{what} folder is not readable") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except FileNotFoundError:
        raise MediaMissing(f"{what} file is not there (not written yet, or deleted by retention)") from None
    except OSError:
        raise NotFound(f"no {what} kept for this detection") from None
    finally:
        os.close(folder)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotFound(f"no {what} kept for this detection")
    return OpenMedia(fd, info.st_size, MEDIA_TYPES[suffix], parts[-1])
