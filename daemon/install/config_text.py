"""The ``/etc/birdd/config.toml`` that ``birdd setup`` writes: the station's place, input, broker and page.

Only what setup decides is written; every other key keeps its documented default (``config.toml`` of
the project). The text is stable for the same settings, so a second run finds nothing to change.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from daemon.install.layout import Layout


@dataclass(frozen=True)
class Station:
    """What ``birdd setup`` is asked to install."""

    name: str
    latitude: float
    longitude: float
    mic: str = ""
    """substring of the input device's name ("" = the system default)"""
    url: str = ""
    """a network stream instead of a microphone"""
    broker_host: str = "localhost"
    broker_port: int = 1883
    web_bind: str = "127.0.0.1"
    web_port: int = 8080
    model: str = ""
    """an existing bundle to use ("" = the all-classes BirdNET bundle setup makes)"""

    @property
    def page_address(self) -> str:
        host = socket.gethostname() if self.web_bind in ("0.0.0.0", "::") else self.web_bind
        return f"http://{f'[{host}]' if ':' in host else host}:{self.web_port}/"


def _toml(value: str | float | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(value)


def _audio_lines(station: Station) -> list[str]:
    if not station.url:
        return ['source = "mic"', f"device = {_toml(station.mic)}"]
    return ['source = "url"', f"url = {_toml(station.url)}"]


def config_text(station: Station, layout: Layout) -> str:
    """The configuration file's text for ``station`` installed as ``layout`` says."""
    state = layout.service_state_dir
    sections = {
        "station": [f"name = {_toml(station.name)}", f"latitude = {station.latitude!r}",
                    f"longitude = {station.longitude!r}"],
        "audio": _audio_lines(station),
        "model": [f"path = {_toml(station.model or layout.service_model_dir)}"],
        "detection": ["range_filter = true"],
        "mqtt": [f"host = {_toml(station.broker_host)}", f"port = {station.broker_port}"],
        "outbox": [f"path = {_toml(state + '/outbox.sqlite')}"],
        "store": [f"path = {_toml(state + '/detections.sqlite')}"],
        "clips": [f"dir = {_toml(state + '/clips')}"],
        "archive": [f"dir = {_toml(state + '/archive')}"],
        "web": [f"bind = {_toml(station.web_bind)}", f"port = {station.web_port}"],
    }
    head = ("# Written by `birdd setup` (docs/stations.md). Every key left out keeps its documented default\n"
            "# (config.toml in the birdd sources). Edit freely: a later `birdd setup` stops rather than overwrite\n"
            "# your changes (--force replaces them); `systemctl restart birdd birdd-web` applies a change.\n")
    return head + "".join(f"\n[{name}]\n" + "".join(f"{line}\n" for line in lines)
                          for name, lines in sections.items())
