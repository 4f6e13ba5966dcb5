"""The changes ``birdd setup`` makes, each one described (``--dry-run``) or applied, in order."""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from daemon.atomic import AtomicWriter
from daemon.errors import SetupError


@dataclass(frozen=True)
class WriteFile:
    path: Path
    text: str
    mode: int
    previous: str | None
    """the file's text before (None: a new file)"""

    def describe(self, detailed: bool) -> str:
        if self.previous is None:
            head = f"write {self.path} (new, {len(self.text.splitlines())} lines, mode {self.mode:04o})"
            return head + ("\n" + _indented(self.text) if detailed else "")
        diff = difflib.unified_diff(self.previous.splitlines(), self.text.splitlines(), f"{self.path} (now)",
                                    f"{self.path} (after setup)", lineterm="")
        return f"update {self.path}" + ("\n" + _indented("\n".join(diff)) if detailed else "")

    def apply(self) -> None:
        writer = AtomicWriter(self.path)
        writer.write(self.text)
        writer.commit()
        self.path.chmod(self.mode)


@dataclass(frozen=True)
class MakeDir:
    path: Path
    mode: int

    def describe(self, detailed: bool) -> str:
        return f"create directory {self.path} (mode {self.mode:04o})"

    def apply(self) -> None:
        self.path.mkdir(mode=self.mode)
        self.path.chmod(self.mode)  # not narrowed by the umask


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    what: str

    def describe(self, detailed: bool) -> str:
        return f"{self.what}: {shlex.join(self.argv)}"

    def apply(self) -> None:
        try:
            proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=900)
        except OSError as exc:
            raise SetupError(f"{self.what}: {shlex.join(self.argv)}: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            said = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            reason = said[-1].removeprefix("birdd: error: ") if said else f"exit status {proc.returncode}"
            raise SetupError(f"{self.what}: {shlex.join(self.argv)}: {reason}")


@dataclass(frozen=True)
class Remove:
    path: Path
    why: str = ""

    def describe(self, detailed: bool) -> str:
        return f"remove {self.path}{f' ({self.why})' if self.why else ''}"

    def apply(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path)
        else:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RemoveDir:
    path: Path

    def describe(self, detailed: bool) -> str:
        return f"remove directory {self.path} (empty)"

    def apply(self) -> None:
        if exists(self.path):  # systemctl disable removes an emptied .wants folder itself
            self.path.rmdir()


Change = WriteFile | MakeDir | Run | Remove | RemoveDir


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def empty_after(path: Path, removed: set[Path]) -> bool:
    """``path`` holds nothing once ``removed`` are gone (a dry run may not remove them to find out)."""
    try:
        return all(entry in removed for entry in path.iterdir())
    except OSError:
        return False


def exists(path: Path) -> bool:
    return os.path.lexists(path)
