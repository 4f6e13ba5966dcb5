"""Species named by the operator (``detection.include`` / ``exclude``), matched to a bundle's columns.

An entry is a species code (``amerob``), a scientific name (``Turdus migratorius``) or a BirdNET label
(``Turdus migratorius_American Robin``); anything after a tab is ignored, so a line of ``birdd species``
(``Turdus migratorius_American Robin<TAB>0.9840``) is an entry as it stands. A species list file holds
one entry per line; blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

from pathlib import Path

from daemon.errors import ConfigError
from daemon.model.labels import normalise_name
from daemon.model.loader import Species


def read_species_list(path: str | Path, key: str) -> list[str]:
    """The entries of a species list file (ConfigError naming ``key`` and the file if it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: {path}: cannot read the species list ({getattr(exc, 'strerror', None) or exc})"
                          ) from None
    entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [entry for entry in entries if entry]


def species_index(entry: str, species: list[Species]) -> int | None:
    """The column of ``entry`` in ``species`` (by code, then scientific name, then BirdNET label), or None."""
    name = entry.split("\t", 1)[0].strip()
    for j, sp in enumerate(species):
        if sp.code == name:
            return j
    scientific = normalise_name(name.split("_", 1)[0])
    for j, sp in enumerate(species):
        if sp.scientific_name and normalise_name(sp.scientific_name) == scientific:
            return j
    return None
