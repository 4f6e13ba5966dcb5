"""sd_notify: datagrams reach $NOTIFY_SOCKET (path or abstract); outside systemd nothing happens or raises."""

import logging
import os
import socket
import time
import uuid

import pytest

from daemon.service import sdnotify


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A bound AF_UNIX datagram socket, named by $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield server


def test_notify_sends_one_datagram_of_newline_separated_states(notify_socket):
    assert sdnotify.notify("READY=1", "STATUS=listening (mic)")
    assert notify_socket.recv(1024) == b"READY=1\nSTATUS=listening (mic)"
    assert sdnotify.notify("STOPPING=1")
    assert notify_socket.recv(1024) == b"STOPPING=1"


def test_abstract_socket(monkeypatch):
    name = f"birdd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("WATCHDOG=1")
        assert server.recv(1024) == b"WATCHDOG=1"


def test_reloading_carries_the_monotonic_clock_in_microseconds(notify_socket):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = notify_socket.recv(1024).decode().split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after


def test_outside_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.reloading() is False


def test_unreachable_socket_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="daemon.service.sdnotify"):
        assert sdnotify.notify("READY=1") is False
    assert "gone.sock" in caplog.text


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("30000000", "self", 30.0),
    ("30000000", None, 30.0),  # WATCHDOG_PID is optional
    ("30000000", "1", None),  # meant for another process
    (None, "self", None),  # no watchdog configured
    ("0", "self", None),
    ("soon", "self", None),
])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert sdnotify.watchdog_interval() == expected
