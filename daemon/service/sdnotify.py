"""The sd_notify protocol in a few lines: datagrams to ``$NOTIFY_SOCKET``; a no-op outside systemd.

The unit is ``Type=notify``: the daemon sends ``READY=1`` once audio flows, ``WATCHDOG=1`` at half
of :func:`watchdog_interval`, :func:`reloading` then ``READY=1`` around a SIGHUP model reload, and
``STOPPING=1`` when it shuts down. See sd_notify(3).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``"READY=1"``, ``"STATUS=listening"``) as one datagram to systemd.

    Returns False, without raising, when not under systemd (no ``NOTIFY_SOCKET``) or when the
    socket cannot be reached (logged): a lost notification must not take the daemon down.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(states).encode(), address)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def reloading() -> bool:
    """Tell systemd a reload has begun (``RELOADING=1`` with ``MONOTONIC_USEC``); send ``READY=1`` when done."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds (``WATCHDOG_USEC``) if systemd expects pings from this process, else None.

    Ping at half of it. ``WATCHDOG_PID``, when set, must be this process (a child does not inherit the duty).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000
