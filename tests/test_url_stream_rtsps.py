"""An ``rtsps://`` stream (RTSP over TLS: gst-rtsp-server with a self-signed certificate made by ``openssl`` at
test time) is a URL source like a plain RTSP one: heard at real time, with or without a password in the URL; a
wrong password (or a plain ``rtsp://`` URL to the TLS port) is one ``stream_error`` event naming the cause, and a
retry; the password is shown nowhere.

FFmpeg (5.1, GnuTLS) does not verify the certificate of an ``rtsps://`` server, so the self-signed one needs no
option (``ffmpeg_command`` adds none; its RTSP demuxer would refuse ``-tls_verify``: "Option not found")."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from stream_servers import RtspServer, assert_tone, hear, self_signed_certificate, wait_until, write_wav

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration
RATE = 48_000
TONE_HZ = 1_000
PASSWORD = "tls-s3cret-pw"


@pytest.fixture
def rtsps_server(tmp_path):
    """``rtsps_server(user="", password="")`` -> a started TLS RtspServer of a 1-kHz tone; killed at teardown."""
    tls = self_signed_certificate(tmp_path / "tls")
    seconds = np.arange(30 * RATE) / RATE  # longer than any test: the stream never ends mid-read
    wav = write_wav(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * TONE_HZ * seconds), RATE)
    servers: list[RtspServer] = []

    def start(user: str = "", password: str = "") -> RtspServer:
        server = RtspServer(wav, user, password, tls=tls)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.mark.parametrize("user", ["", "birdd"], ids=["anonymous", "password"])
def test_an_rtsps_stream_is_heard_at_real_time(rtsps_server, url_source, user):
    server = rtsps_server(user, PASSWORD if user else "")
    assert server.url.startswith("rtsps://")
    source, ring, events = url_source(server.url, stall_s=5.0)
    rate, heard, state, seen = hear(source, ring, events, "the RTSPS stream")
    server.kill()
    assert state == "ok" and not [kind for kind, _ in seen if kind != "stream_resumed"], seen
    assert 0.6 * SAMPLE_RATE <= rate <= 1.4 * SAMPLE_RATE  # paced by the server, not as fast as TLS carries it
    assert_tone(heard, TONE_HZ)  # L16 and two resamplers
    assert source.label == f"rtsps://{'***@' if user else ''}127.0.0.1:{server.port}/birds"


@pytest.mark.parametrize("case, cause", [("password", "401 Unauthorized"),
                                         ("plain", "Invalid data found when processing input")])
def test_a_wrong_password_or_plain_rtsp_is_one_line_and_a_retry(rtsps_server, url_source, caplog, case, cause):
    """A wrong password, or ``rtsp://`` to the TLS port (which shows that the heard streams came over TLS)."""
    server = rtsps_server("birdd", PASSWORD)
    url = {"password": server.url.replace(PASSWORD, "wrong-" + PASSWORD),
           "plain": server.url.replace("rtsps://", "rtsp://")}[case]
    with caplog.at_level(logging.INFO, logger="daemon.audio.url_source"):
        source, ring, events = url_source(url)
        wait_until(lambda: source.status().retries >= 3, 10, "three retries")
        time.sleep(0.1)
    status = source.status()
    lines = [r.getMessage() for r in caplog.records]
    failures = [line for line in lines if "retrying in" in line]
    assert len(failures) >= 2 and all(cause in line and "\n" not in line for line in failures), lines
    assert [kind for kind, _ in events] == ["stream_error"] and cause in events[0][1], events
    assert source.is_alive() and status.state == "waiting" and cause in status.detail
    assert ring.written == 0
    shown = [*lines, *(message for _, message in events), status.detail, source.label]
    assert all(PASSWORD not in text for text in shown), shown
