"""A URL source against a real icecast2 (fed by an ffmpeg source client) with a listener password on the mount.

The right password streams; a refused password, a wrong mount or a port nobody listens on is one log line
per attempt naming the cause, one ``stream_error`` event, and a retry; the password is in none of them.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from conftest import free_port
from stream_servers import Icecast, IcecastPush, wait_until, write_wav

from daemon.constants import SAMPLE_RATE

pytestmark = pytest.mark.integration
PASSWORD = "hunter22-pw"


@pytest.fixture
def icecast(tmp_path):
    server = Icecast(tmp_path / "icecast", users={"birdd": PASSWORD})
    wav = write_wav(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(10 * 16_000) / 16_000), 16_000)
    push = IcecastPush(server, wav)
    time.sleep(1.0)  # the source client connects and starts the mount
    yield server
    push.stop()
    server.stop()


def test_the_right_password_streams(icecast, url_source):
    source, ring, events = url_source(icecast.url(user="birdd", password=PASSWORD))
    wait_until(lambda: ring.written > SAMPLE_RATE, 15, "a second of audio")
    assert source.status().state == "ok" and source.label == f"http://***@127.0.0.1:{icecast.port}/private.ogg"
    assert events == []


@pytest.mark.parametrize("case, cause", [("password", "401 Unauthorized"), ("mount", "404"),
                                         ("port", "Connection refused")])
def test_a_refused_password_or_a_wrong_url_is_one_line_and_a_retry(icecast, url_source, caplog, case, cause):
    url = {"password": icecast.url(user="birdd", password="wrong-" + PASSWORD),
           "mount": icecast.url("/nothing.ogg", user="birdd", password=PASSWORD),
           "port": f"http://birdd:{PASSWORD}@127.0.0.1:{free_port()}/private.ogg"}[case]
    with caplog.at_level(logging.INFO, logger="daemon.audio.url_source"):
        source, ring, events = url_source(url)
        wait_until(lambda: source.status().retries >= 3, 10, "three retries")
        time.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records]
    failures = [line for line in lines if "retrying in" in line]
    assert len(failures) >= 2 and all(cause in line and "\n" not in line for line in failures), lines
    assert [kind for kind, _ in events] == ["stream_error"] and cause in events[0][1]
    assert source.is_alive() and source.status().state == "waiting" and ring.written == 0
    shown = [*lines, *(message for _, message in events), source.status().detail, source.label]
    assert all(PASSWORD not in text for text in shown)
