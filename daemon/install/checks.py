"""What ``birdd setup`` checks before it installs anything: each failure is a :class:`SetupError` in one line.

The microphone is opened as the daemon opens it (PortAudio), the stream's server is connected to,
the broker is sent an MQTT CONNECT and must answer, and a given model bundle must load.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

from daemon.audio.credentials import mask_credentials
from daemon.config import AudioConfig
from daemon.errors import BirddError, SetupError

TIMEOUT_S = 5.0
"""how long each network check waits (seconds)"""
MIC_PROBE_S = 0.5
"""how long the microphone is listened to (seconds)"""
STREAM_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or str(exc)


def check_broker(host: str, port: int) -> None:
    """An MQTT CONNECT to ``host:port`` is accepted (CONNACK with success)."""
    import paho.mqtt.client as mqtt

    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome.append("" if not reason_code.is_failure else str(reason_code))
        answered.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="birdd-setup-check")
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=int(TIMEOUT_S) + 1)
    except OSError as exc:
        raise SetupError(f"broker {host}:{port}: {_reason(exc)}") from None
    client.loop_start()
    try:
        if not answered.wait(TIMEOUT_S):
            raise SetupError(f"broker {host}:{port}: no MQTT answer within {TIMEOUT_S:g} s")
        if outcome[0]:
            raise SetupError(f"broker {host}:{port}: refused the connection ({outcome[0]}); set mqtt.username "
                             "and mqtt.password_file in the config, then run setup with --skip-checks")
    finally:
        client.disconnect()
        client.loop_stop()


def sound_cards() -> str:
    """``arecord -l``'s capture cards, one ``card N: NAME`` each, or why there is no list."""
    if shutil.which("arecord") is None:
        return "arecord not installed"
    listing = subprocess.run(["arecord", "-l"], capture_output=True, text=True, timeout=30)
    cards = [line.split(",")[0] for line in listing.stdout.splitlines() if line.startswith("card ")]
    return ", ".join(cards) or "no capture card"


def check_microphone(device: str) -> str:
    """The input device ``device`` (a name substring, "" = the default) opens and delivers audio: its name."""
    from daemon.audio.mic_source import probe_input

    shown = repr(device) if device else "(default input)"
    try:
        name, frames = probe_input(AudioConfig(device=device), MIC_PROBE_S)
    except (BirddError, OSError) as exc:
        raise SetupError(f"microphone {shown}: {str(exc).removeprefix(f'audio.device {device!r}: ')} "
                         f"(arecord -l: {sound_cards()})") from None
    if frames == 0:
        raise SetupError(f"microphone {name!r}: opened but gave no audio in {MIC_PROBE_S:g} s")
    return name


def check_stream(url: str) -> None:
    """The stream's server accepts a TCP connection (rtsp, rtsps, http, https), or its file exists."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if not Path(parts.path).is_file():
            raise SetupError(f"stream {url}: no such file")
        return
    if parts.scheme not in STREAM_PORTS or not parts.hostname:
        raise SetupError(f"stream {mask_credentials(url, url)}: expected rtsp://, rtsps://, http://, https:// "
                         "or a file")
    try:
        port = parts.port or STREAM_PORTS[parts.scheme]
        socket.create_connection((parts.hostname, port), timeout=TIMEOUT_S).close()
    except ValueError as exc:
        raise SetupError(f"stream {mask_credentials(url, url)}: {exc}") from None
    except OSError as exc:
        raise SetupError(f"stream {mask_credentials(url, url)}: {_reason(exc)}") from None


def check_model(path: str) -> None:
    """The bundle at ``path`` loads (its checksums verified)."""
    from daemon.model.loader import load_model

    try:
        load_model(path)
    except (BirddError, OSError) as exc:
        raise SetupError(f"model {path}: {exc}") from None
