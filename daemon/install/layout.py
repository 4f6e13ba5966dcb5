"""Where ``birdd setup`` puts each file: the Debian paths, under a root prefix (``/`` on a station)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNITS = ("birdd.service", "birdd-web.service")
"""the detector's unit and the web page's, started in this order"""
WANTED_BY = "multi-user.target"


@dataclass(frozen=True)
class Layout:
    """The paths of one installation; every one under ``root``."""

    root: Path

    @classmethod
    def under(cls, root: str | Path) -> Layout:
        return cls(Path(root).absolute())

    @property
    def is_system(self) -> bool:
        """True when installing into the running system (``--root /``), where systemd is asked to act."""
        return self.root == Path("/")

    def path(self, absolute: str) -> Path:
        """``absolute`` (a path of the installed system) under the root."""
        return self.root / absolute.lstrip("/")

    @property
    def config_dir(self) -> Path:
        return self.path("/etc/birdd")

    @property
    def config(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def manifest(self) -> Path:
        """What setup added (:mod:`daemon.install.manifest`), beside the config it wrote."""
        return self.config_dir / "setup-manifest.json"

    @property
    def unit_dir(self) -> Path:
        return self.path("/etc/systemd/system")

    @property
    def wants_dir(self) -> Path:
        """Where ``systemctl enable`` links the units (``WantedBy=multi-user.target``)."""
        return self.unit_dir / f"{WANTED_BY}.wants"

    def unit(self, name: str) -> Path:
        return self.unit_dir / name

    @property
    def private_dir(self) -> Path:
        """``/var/lib/private``: systemd keeps ``DynamicUser=`` state there; it must be private to root."""
        return self.path("/var/lib/private")

    @property
    def state_dir(self) -> Path:
        """The service's state directory as setup writes it (``StateDirectory=birdd`` of a dynamic user)."""
        return self.private_dir / "birdd"

    @property
    def state_link(self) -> Path:
        """``/var/lib/birdd``: the link systemd makes to :attr:`state_dir` when the service first starts."""
        return self.path("/var/lib/birdd")

    @property
    def service_state_dir(self) -> str:
        """The state directory as the service sees it: ``/var/lib/birdd`` under systemd; under another root,
        where no systemd maps it, :attr:`state_dir` itself."""
        return "/var/lib/birdd" if self.is_system else str(self.state_dir)

    @property
    def model_dir(self) -> Path:
        """Where setup makes the all-classes BirdNET bundle."""
        return self.state_dir / "model"

    @property
    def service_model_dir(self) -> str:
        return f"{self.service_state_dir}/model"
