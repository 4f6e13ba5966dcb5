"""An ``ffmpeg`` child process decoding one URL to float32 mono at the model rate on a pipe.

The child is the decoder: FFmpeg opens the URL (RTSP/RTSPS, HTTP(S) Icecast/Shoutcast, HLS, any file),
decodes, downmixes and resamples, and writes raw ``f32le`` samples to its stdout. :meth:`FfmpegChild.read`
waits on stdout and stderr together with ``select`` (no thread of its own): it returns the samples that
arrived, keeps FFmpeg's last error lines (credentials masked), and reports the end of the stream. A child
that hangs is ended by :meth:`FfmpegChild.close` (SIGTERM, then SIGKILL), which nothing in-process could
do to a stuck network read.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
from collections import deque
from pathlib import Path

import numpy as np

from daemon.audio.credentials import mask_credentials
from daemon.constants import SAMPLE_RATE
from daemon.errors import AudioError

READ_BYTES = 64 * 1024
"""largest read from the child's stdout at a time (0.5 s of float32 audio)"""
_STDERR_LINES = 8
_TERM_WAIT_S = 1.0


def is_file_input(url: str) -> bool:
    """True for a local file (a path or ``file:``), which FFmpeg must pace at real time (``-re``)."""
    return "://" not in url or url.startswith("file:")


def ffmpeg_command(url: str, rtsp_transport: str = "tcp", binary: str = "ffmpeg") -> list[str]:
    """The command line: quiet, no stdin, input options by protocol, mono ``f32le`` at the model rate on stdout."""
    options = ["-re"] if is_file_input(url) else []
    if url.startswith(("rtsp://", "rtsps://")):
        options += ["-rtsp_transport", rtsp_transport]
    return [binary, "-nostdin", "-hide_banner", "-loglevel", "error", *options, "-i", url,
            "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1"]


def find_ffmpeg() -> str:
    """The ``ffmpeg`` binary on PATH, or an AudioError that says how to install it."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise AudioError("audio.url: the ffmpeg binary is not installed (Debian: apt-get install ffmpeg)")
    return found


class FfmpegChild:
    """One running ``ffmpeg`` decoding ``url``; plain object: the caller's thread reads it."""

    def __init__(self, url: str, rtsp_transport: str = "tcp", binary: str = "ffmpeg") -> None:
        self._url = url
        try:
            self._process = subprocess.Popen(ffmpeg_command(url, rtsp_transport, binary), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise AudioError(f"audio.url: cannot start {Path(binary).name} ({exc.strerror})") from None
        self._stdout = self._process.stdout.fileno()
        self._stderr = self._process.stderr.fileno()
        os.set_blocking(self._stdout, False)
        os.set_blocking(self._stderr, False)
        self._partial = b""  # bytes of a float32 sample split across two reads
        self._error_text = b""
        self._stderr_open = True
        self.errors: deque[str] = deque(maxlen=_STDERR_LINES)
        """FFmpeg's last stderr lines, credentials masked"""
        self.ended = False
        """True once stdout is closed (the child exited or closed it)"""


    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def read(self, timeout: float) -> np.ndarray:
        """The samples that arrive within ``timeout`` seconds (empty if none); sets :attr:`ended` at EOF."""
        if self.ended:
            return np.zeros(0, dtype=np.float32)
        watched = [self._stdout, self._stderr] if self._stderr_open else [self._stdout]
        ready, _, _ = select.select(watched, [], [], timeout)
        if self._stderr in ready:
            self._drain_stderr()
        if self._stdout not in ready:
            return np.zeros(0, dtype=np.float32)
        try:
            data = os.read(self._stdout, READ_BYTES)
        except BlockingIOError:
            return np.zeros(0, dtype=np.float32)
        if not data:
            self.ended = True
            self._drain_stderr()
            return np.zeros(0, dtype=np.float32)
        data = self._partial + data
        whole = len(data) - len(data) % 4
        self._partial = data[whole:]
        return np.frombuffer(data[:whole], dtype="<f4").astype(np.float32, copy=False)

    def exit_reason(self) -> str:
        """Why the child ended: its exit status and FFmpeg's last error line (waits up to 1 s for the status)."""
        try:
            code = self._process.wait(_TERM_WAIT_S)
        except subprocess.TimeoutExpired:
            return "ffmpeg closed its output"
        if code == 0 and not self.errors:
            return "the stream ended (ffmpeg exited with status 0)"
        last = self.errors[-1] if self.errors else "no error message"
        return f"ffmpeg exited with status {code}: {last}"

    def close(self) -> None:
        """End the child (SIGTERM, SIGKILL after a second) and close the pipes."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(_TERM_WAIT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdout, self._process.stderr):
            with contextlib.suppress(OSError):
                pipe.close()

    def _drain_stderr(self) -> None:
        while True:
            try:
                chunk = os.read(self._stderr, 4096)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                self._stderr_open = False
                break
            self._error_text += chunk
        *lines, self._error_text = self._error_text.split(b"\n")
        self._error_text = self._error_text[-4096:]
        for line in lines:
            text = line.decode(errors="replace").strip()
            if text:
                self.errors.append(mask_credentials(text, self._url))
