"""What ``birdd setup`` added, so that ``birdd setup --uninstall`` removes exactly that.

A JSON file beside the config (:attr:`Layout.manifest`); paths are those of the installed system
(``/etc/birdd/config.toml``), whatever the root. No time stamps: a second run that changes nothing
writes the same manifest, so it does not write it at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from daemon.errors import SetupError
from daemon.install.layout import Layout

FORMAT = "birdd-setup-manifest"
VERSION = 1


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass
class Manifest:
    files: dict[str, str] = field(default_factory=dict)
    """file -> sha256 of the text setup wrote"""
    dirs: list[str] = field(default_factory=list)
    """directories setup created (they did not exist before), in the order made"""
    model: str | None = None
    """the bundle setup made (None: it used one that existed or was given)"""
    enabled: list[str] = field(default_factory=list)
    """units setup enabled"""

    def text(self) -> str:
        return json.dumps({"format": FORMAT, "version": VERSION, "files": dict(sorted(self.files.items())),
                           "dirs": self.dirs, "model": self.model, "enabled": self.enabled}, indent=2) + "\n"

    def owns_unchanged(self, layout: Layout, name: str) -> bool:
        """``name`` is a file setup wrote and nobody changed since (so it may be replaced or removed)."""
        path = layout.path(name)
        return name in self.files and path.is_file() and sha256(path.read_bytes()) == self.files[name]


def read_manifest(layout: Layout) -> Manifest:
    """The manifest under ``layout`` (an empty one if setup never ran there)."""
    path = layout.manifest
    if not path.exists():
        return Manifest()
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION}")
        return Manifest(dict(data["files"]), list(data["dirs"]), data["model"], list(data["enabled"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SetupError(f"{path}: unreadable setup manifest ({exc})") from None


def relative(layout: Layout, path: Path) -> str:
    """``path`` under the root as the installed system names it."""
    return "/" + str(path.relative_to(layout.root)).removeprefix(".")
