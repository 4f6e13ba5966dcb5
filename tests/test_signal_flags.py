"""SIGTERM, SIGINT and SIGHUP become flags for the main loop (no locks in a signal handler)."""

from __future__ import annotations

import os
import signal

import pytest

from daemon.service.signal_flags import SignalFlags


@pytest.fixture
def restored_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum, flag", [(signal.SIGTERM, "stop"), (signal.SIGINT, "stop"), (signal.SIGHUP, "reload")])
def test_each_signal_sets_its_flag_and_only_it(restored_handlers, signum, flag):
    flags = SignalFlags()
    flags.install(reload=True)
    os.kill(os.getpid(), signum)  # the handler runs in this (the main) thread before kill returns to Python code
    assert (flags.stop, flags.reload) == (flag == "stop", flag == "reload")


def test_without_reload_sighup_is_left_alone(restored_handlers):
    before = signal.getsignal(signal.SIGHUP)
    SignalFlags().install(reload=False)
    assert signal.getsignal(signal.SIGHUP) is before
