"""Real stream servers on the loopback for the URL-source tests, and the ``url_source`` fixture (a plugin of conftest).

- :class:`RtspServer`: Debian's gst-rtsp-server (tests/rtsp_server.py under the system python3), a WAV at
  real time, optionally behind basic auth, optionally over TLS (``rtsps://``, a certificate from
  :func:`self_signed_certificate`); it can be killed and started again on the same port.
- :class:`Icecast`: Debian's icecast2 with its config written for the test, a listener password on
  ``/private.ogg``, fed by :class:`IcecastPush` (an ``ffmpeg`` source client, Ogg Vorbis).
- :class:`SilentServer`: accepts TCP connections and never sends a byte (a hung camera).
- :class:`PacedWavServer`: HTTP, a WAV sent at ``speed`` times real time, optionally going silent (but keeping
  the connection open) after ``stall_after_s`` seconds of audio.
- :class:`LiveHls`: a live HLS stream: ``ffmpeg`` segments a WAV at real time (AAC, 1-s segments, a sliding
  playlist), a threaded HTTP server on the loopback serves the folder.
"""

from __future__ import annotations

import getpass
import hashlib
import http.server
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import HOST, free_port

from daemon.audio.ring import RingBuffer
from daemon.audio.url_source import UrlSource
from daemon.config import AudioConfig
from daemon.constants import SAMPLE_RATE

TESTS = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"


def need(*programs: str) -> None:
    """Skip the test unless every program is installed (``make test`` installs them: Makefile APT_PACKAGES)."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for ``CN=127.0.0.1`` (valid a day) and its key: PEM paths in ``folder``."""
    need("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={HOST}", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class RtspServer:
    """``rtsp://HOST:port/birds`` serving ``wav`` (``rtsps://`` with ``tls``: certificate and key PEM paths);
    ``url`` has the credentials in it when auth is on."""

    def __init__(self, wav: Path, user: str = "", password: str = "",
                 tls: tuple[Path, Path] | None = None) -> None:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                               capture_output=True)
        if probe.returncode:
            pytest.skip("not installed: gir1.2-gst-rtsp-server-1.0 and python3-gi (Makefile APT_PACKAGES)")
        self.port = free_port()
        self._args = [SYSTEM_PYTHON, str(TESTS / "rtsp_server.py"), str(self.port), str(wav),
                      *([user, password] if user else []), *(["--tls", *map(str, tls)] if tls else [])]
        scheme = "rtsps" if tls else "rtsp"
        credentials = f"{user}:{password}@" if user else ""
        self.url = f"{scheme}://{credentials}{HOST}:{self.port}/birds"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"rtsp_server.py did not start: {line} {self._process.stderr.read()}")

    def kill(self) -> None:
        """SIGKILL: every client's connection breaks at once."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        self._process = None


class Icecast:
    """icecast2 on a free loopback port: source password ``source_password``; ``/private.ogg`` needs ``users``."""

    def __init__(self, workdir: Path, users: dict[str, str], source_password: str = "sourcepass") -> None:
        need("icecast2", "ffmpeg")
        self.port = free_port()
        self.source_password = source_password
        workdir.mkdir(parents=True, exist_ok=True)
        # icecast2 refuses to run as root: it drops to nobody, who must read the listener file
        self._shared = Path(tempfile.mkdtemp(prefix="birdd-icecast-"))
        self._shared.chmod(0o755)
        users_file = self._shared / "listeners"
        users_file.write_text("".join(f"{u}:{hashlib.md5(p.encode()).hexdigest()}\n" for u, p in users.items()))
        users_file.chmod(0o644)
        owner = ("<changeowner><user>nobody</user><group>nogroup</group></changeowner>"
                 if getpass.getuser() == "root" else "")
        self.conf = workdir / "icecast.xml"
        self.conf.write_text(f"""<icecast>
  <limits><sources>2</sources><clients>16</clients><burst-size>0</burst-size></limits>
  <authentication><source-password>{source_password}</source-password>
    <admin-user>admin</admin-user><admin-password>{source_password}</admin-password></authentication>
  <hostname>{HOST}</hostname>
  <listen-socket><port>{self.port}</port><bind-address>{HOST}</bind-address></listen-socket>
  <mount type="normal"><mount-name>/private.ogg</mount-name>
    <authentication type="htpasswd"><option name="filename" value="{users_file}"/></authentication></mount>
  <fileserve>0</fileserve>
  <paths><basedir>{self._shared}</basedir><logdir>{self._shared}</logdir><pidfile>{self._shared}/pid</pidfile>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><accesslog>-</accesslog><errorlog>-</errorlog><loglevel>2</loglevel></logging>
  <security><chroot>0</chroot>{owner}</security>
</icecast>
""")
        self.log = workdir / "icecast.log"
        self._log = self.log.open("wb")
        self._process = subprocess.Popen(["icecast2", "-c", str(self.conf)], stdout=self._log, stderr=self._log)
        wait_for_port(self.port)

    def url(self, mount: str = "/private.ogg", user: str = "", password: str = "") -> str:
        credentials = f"{user}:{password}@" if user else ""
        return f"http://{credentials}{HOST}:{self.port}{mount}"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._log.close()
        shutil.rmtree(self._shared, ignore_errors=True)


class IcecastPush:
    """``ffmpeg`` as the Icecast source client: ``wav`` in a loop at real time, Ogg Vorbis, to ``mount``."""

    def __init__(self, icecast: Icecast, wav: Path, mount: str = "/private.ogg") -> None:
        target = f"icecast://source:{icecast.source_password}@{HOST}:{icecast.port}{mount}"
        self._process = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(wav),
             "-c:a", "libvorbis", "-f", "ogg", "-content_type", "application/ogg", target],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)


class SilentServer:
    """Accepts every connection on a free port and holds it open without sending anything."""

    def __init__(self) -> None:
        self._sock = socket.create_server((HOST, 0))
        self.port = self._sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


def wav_header(rate: int, data_bytes: int = 0x7FFF0000) -> bytes:
    """A mono 16-bit PCM WAV header announcing ``data_bytes`` (default: far more than is ever sent)."""
    return (b"RIFF" + struct.pack("<I", data_bytes + 36) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))


class PacedWavServer:
    """``http://HOST:port/`` sends a WAV of ``audio`` (float, at ``rate``, looped) at ``speed`` x real time.

    Each connection starts with ``burst_s`` seconds at once, as Icecast's burst-on-connect does (FFmpeg needs
    about 5 s of a WAV over HTTP before it decodes anything).
    """

    def __init__(self, audio: np.ndarray, rate: int, speed: float = 1.0, stall_after_s: float | None = None,
                 burst_s: float = 6.0) -> None:
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        chunk = rate // 10 * 2  # 100 ms of samples

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.end_headers()
                self.wfile.write(wav_header(rate))
                started, sent = time.monotonic(), 0
                try:
                    while True:
                        if stall_after_s is not None and sent >= stall_after_s * rate * 2:
                            time.sleep(0.1)  # hold the connection, send nothing
                            if time.monotonic() - started > 60:
                                return
                            continue
                        position = sent % len(pcm)
                        self.wfile.write(pcm[position:position + chunk])
                        sent += chunk
                        due = started + (sent / (2 * rate) - burst_s) / speed
                        time.sleep(max(0.0, due - time.monotonic()))
                except OSError:
                    return

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LiveHls:
    """``http://HOST:port/live.m3u8``: ``wav`` looped at real time as a live HLS stream (a playlist of the last 6
    one-second AAC segments, older ones deleted), as a camera or a streaming server publishes one."""

    def __init__(self, wav: Path, folder: Path) -> None:
        need("ffmpeg")
        folder.mkdir(parents=True, exist_ok=True)
        self._segmenter = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(wav),
             "-c:a", "aac", "-b:a", "96k", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
             "-hls_flags", "delete_segments", str(folder / "live.m3u8")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{HOST}:{self._server.server_address[1]}/live.m3u8"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 15
        while not (folder / "live.m3u8").exists() or (folder / "live.m3u8").read_text().count("#EXTINF") < 3:
            if time.monotonic() > deadline or self._segmenter.poll() is not None:
                self.close()
                raise RuntimeError("ffmpeg made no HLS playlist of 3 segments")
            time.sleep(0.1)

    def close(self) -> None:
        if self._segmenter.poll() is None:
            self._segmenter.terminate()
            self._segmenter.wait(10)
        self._server.shutdown()
        self._server.server_close()


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    """A mono 16-bit WAV of ``audio`` at ``path``."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    path.write_bytes(wav_header(rate, len(pcm)) + pcm)
    return path


@pytest.fixture
def url_source() -> Iterator[Callable[..., tuple[UrlSource, RingBuffer, list[tuple[str, str]]]]]:
    """``url_source(url, **audio)`` -> a started source, its ring and the events it sent; stopped at teardown."""
    need("ffmpeg")
    started: list[UrlSource] = []

    def start(url: str, **audio: object) -> tuple[UrlSource, RingBuffer, list[tuple[str, str]]]:
        ring = RingBuffer(60 * SAMPLE_RATE)
        events: list[tuple[str, str]] = []
        config = AudioConfig(source="url", url=url, retry_initial_s=0.2, retry_max_s=0.4, **audio)
        source = UrlSource(config, ring, on_event=lambda kind, message: events.append((kind, message)))
        source.start()
        started.append(source)
        return source, ring, events

    yield start
    for source in started:
        source.stop(3.0)


def hear(source: UrlSource, ring: RingBuffer, events: list[tuple[str, str]], what: str,
         seconds: float = 4.0) -> tuple[float, np.ndarray, str, list[tuple[str, str]]]:
    """After 2 s of ``what`` in the ring, listen for ``seconds``: (samples per second heard, the last second, the
    source's state and its events so far). Read before the server goes: a server's end is a fault of its own."""
    wait_until(lambda: ring.written >= 2 * SAMPLE_RATE, 20, f"2 s of {what}")
    first, started = ring.written, time.monotonic()
    time.sleep(seconds)
    rate = (ring.written - first) / (time.monotonic() - started)
    _, heard = ring.copy_past(ring.written - SAMPLE_RATE, ring.written)[-1]
    return rate, heard, source.status().state, list(events)


def assert_tone(heard: np.ndarray, hz: float) -> None:
    """``heard`` is a tone of ``hz`` at the level the test servers send (0.3 peak: 0.3 / sqrt 2 RMS)."""
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(heard.size)))
    assert np.fft.rfftfreq(heard.size, 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(hz, abs=2)
    assert 0.15 < np.sqrt(np.mean(heard**2)) < 0.3


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)
