"""Decoded audio held on disk while distilling, so memory does not grow with hours of audio.

Every decoded file is appended to one anonymous temporary file (deleted by the system when it is closed, also
after a crash) as half-precision samples; a file is then a :class:`SpilledSamples`, which reads any span back
by position (``samples[a:b]``, one ``pread``). The reads go through the page cache, which the kernel gives back
under memory pressure: a process's resident memory holds only the spans in use.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np


class Samples(Protocol):
    """Mono samples that can be sliced by position: an array, or a :class:`SpilledSamples`."""

    @property
    def size(self) -> int: ...

    def __getitem__(self, span: slice) -> np.ndarray: ...


class AudioSpill:
    """One temporary file of samples of one dtype; :meth:`append` writes a decoded file to its end."""

    def __init__(self, dtype: np.dtype, folder: str | Path | None = None) -> None:
        """``folder``: where the temporary file lives (None: the system's temporary folder)."""
        self.dtype = np.dtype(dtype)
        self._file = tempfile.TemporaryFile(dir=folder, prefix="birdd-distill-audio-")  # noqa: SIM115 (lives as long as the spill)
        self._end = 0  # samples written

    def append(self, samples: np.ndarray) -> SpilledSamples:
        """Write ``samples`` (of :attr:`dtype`) after those already written; their handle."""
        data = np.ascontiguousarray(samples, dtype=self.dtype)
        self._file.seek(self._end * self.dtype.itemsize)
        self._file.write(data.tobytes())
        self._file.flush()
        handle = SpilledSamples(self, self._end, data.size)
        self._end += data.size
        return handle

    def read(self, first: int, count: int) -> np.ndarray:
        """``count`` samples from sample ``first`` of the file (a writable array)."""
        data = os.pread(self._file.fileno(), count * self.dtype.itemsize, first * self.dtype.itemsize)
        return np.frombuffer(bytearray(data), dtype=self.dtype)

    @property
    def bytes(self) -> int:
        """Bytes written so far."""
        return self._end * self.dtype.itemsize


class SpilledSamples:
    """A decoded file in an :class:`AudioSpill`: ``size`` samples, sliced like an array (step 1 only)."""

    def __init__(self, spill: AudioSpill, offset: int, size: int) -> None:
        self._spill, self._offset, self.size = spill, offset, size

    @property
    def dtype(self) -> np.dtype:
        """The samples' dtype."""
        return self._spill.dtype

    def __getitem__(self, span: slice) -> np.ndarray:
        start, stop, step = span.indices(self.size)
        if step != 1:
            raise ValueError("spilled samples are read in contiguous spans")
        return self._spill.read(self._offset + start, max(0, stop - start))
