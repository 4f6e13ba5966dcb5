"""The systemd units ``birdd setup`` installs: the project's ``systemd/`` files, adjusted to the paths.

The units come from the checkout's ``systemd/`` folder when birdd runs from one, else from the copy
the wheel installs under ``<venv>/share/birdd/systemd`` (pyproject.toml ``data-files``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from daemon.errors import SetupError
from daemon.install.layout import Layout

EXEC_START_BIRDD = "/opt/birdd/.venv/bin/birdd"
"""the ``birdd`` the project's unit files name, replaced by the one running setup"""
CONFIG = "/etc/birdd/config.toml"
"""the configuration the project's unit files name, replaced by the layout's"""


def unit_sources() -> list[Path]:
    """Folders that may hold the unit files, in the order they are tried."""
    return [Path(__file__).resolve().parents[2] / "systemd", Path(sys.prefix) / "share" / "birdd" / "systemd"]


def unit_template(name: str) -> str:
    for folder in unit_sources():
        if (folder / name).is_file():
            return (folder / name).read_text()
    raise SetupError(f"unit {name}: not found in {' or '.join(map(str, unit_sources()))} (reinstall birdd)")


def birdd_executable() -> Path:
    """The ``birdd`` command of the environment running setup: the units start this one."""
    birdd = Path(sys.executable).with_name("birdd")
    if not birdd.is_file():
        raise SetupError(f"{birdd}: no birdd command beside {sys.executable} (install birdd into a venv first)")
    return birdd


def unit_text(name: str, layout: Layout, birdd: Path) -> str:
    """Unit ``name`` as installed: ``ExecStart=`` runs ``birdd`` with ``layout``'s configuration."""
    text = unit_template(name).replace(EXEC_START_BIRDD, str(birdd)).replace(CONFIG, str(layout.config))
    return f"# Installed by `birdd setup` from systemd/{name}, its paths adjusted.\n{text}"
