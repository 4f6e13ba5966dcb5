"""``systemctl`` as ``birdd setup`` uses it: asked for real on a running systemd, offline otherwise.

On a system booted with systemd (``/run/systemd/system`` exists) and ``--root /``, setup reloads,
enables and starts the units. Elsewhere (another ``--root``, a chroot, a container without systemd
as PID 1) ``systemctl --root=ROOT`` enables them offline (the ``WantedBy=`` links) and nothing is
started; setup says so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from daemon.errors import SetupError
from daemon.install.layout import Layout

BOOTED_MARK = Path("/run/systemd/system")
"""exists when systemd runs as PID 1 (sd_booted)"""


class Systemctl:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.running = layout.is_system and BOOTED_MARK.is_dir()
        """True when systemd runs this system: units can be started and the manager reloaded"""

    def command(self, *args: str) -> list[str]:
        offline = [] if self.running else [f"--root={self.layout.root}"]
        return ["systemctl", *offline, *args]

    def _query(self, *args: str) -> bool:
        if shutil.which("systemctl") is None:
            raise SetupError("systemctl: not installed (apt-get install systemd)")
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=60).returncode == 0

    def is_enabled(self, unit: str) -> bool:
        return self.layout.unit(unit).exists() and self._query("is-enabled", "--quiet", unit)

    def is_active(self, unit: str) -> bool:
        return self.running and self._query("is-active", "--quiet", unit)
