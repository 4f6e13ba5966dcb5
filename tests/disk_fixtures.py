"""Real small file systems for fault tests: a tmpfs that fills up, and an ext4 "SD card" the kernel turns read-only.

Both need root (``mount``, ``losetup``), as in CI; a test that asks for them is skipped with the reason otherwise.
"""

from __future__ import annotations

import errno
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CARD_MB = 32
"""size of the ext4 image behind :func:`sd_card`"""


def run(*command: str) -> str:
    """Run a system command; its stdout (raises CalledProcessError or FileNotFoundError)."""
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _cannot(what: str, exc: Exception) -> None:
    pytest.skip(f"cannot {what} here (needs root and the tool): {getattr(exc, 'stderr', None) or exc!r}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own (``mount -t tmpfs``; room for the outbox's WAL), unmounted at teardown."""
    target = tmp_path / "fs"
    target.mkdir()
    try:
        run("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(target))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        _cannot("mount a tmpfs", exc)
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as fh:  # unbuffered: nothing left to flush (and fail) at close
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def is_read_only(directory: Path) -> bool:
    """Does the file system of ``directory`` refuse a new file as read-only (EROFS)? (A kernel's emergency remount
    may leave the mount options saying ``rw``: the refusal is what counts.)"""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return False
    except OSError as exc:
        return exc.errno == errno.EROFS


@dataclass(frozen=True)
class SdCard:
    """An ext4 file system on a loop device, mounted ``errors=remount-ro`` as Raspberry Pi OS mounts its card."""

    root: Path
    device: str
    """the block device's name, e.g. ``loop0``"""

    def fail(self, timeout: float = 5.0) -> None:
        """What a card error does: ext4 reports an error and remounts the file system read-only under its writers
        (``/sys/fs/ext4/<dev>/trigger_fs_error`` takes the kernel's own path, ``ext4_error``); returns once it is."""
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("birdd test: the card failed\n")
        deadline = time.monotonic() + timeout
        while not is_read_only(self.root):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.root} still writable {timeout} s after the ext4 error")
            time.sleep(0.05)


@pytest.fixture
def sd_card(tmp_path: Path) -> Iterator[SdCard]:
    """A fresh :class:`SdCard` of :data:`CARD_MB` MB under ``tmp_path``; unmounted and detached at teardown."""
    image, root = tmp_path / "card.img", tmp_path / "card"
    root.mkdir()
    with image.open("wb") as fh:
        fh.truncate(CARD_MB * 2**20)
    try:
        run("mkfs.ext4", "-q", "-F", str(image))
        device = run("losetup", "--find", "--show", str(image))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        _cannot("make a loop-mounted ext4 file system", exc)
    try:
        run("mount", "-t", "ext4", "-o", "errors=remount-ro", device, str(root))
        card = SdCard(root, Path(device).name)
        if not Path(f"/sys/fs/ext4/{card.device}/trigger_fs_error").exists():
            run("umount", str(root))
            pytest.skip("this kernel's ext4 has no trigger_fs_error")
        yield card
        subprocess.run(["umount", "-l", str(root)], check=False, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        _cannot("mount a loop device", exc)
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
