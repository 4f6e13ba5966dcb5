"""End to end: a fresh Debian bookworm (debootstrap) gets a birdd station from install.sh, as a new box would.

    sudo python bench/setup_chroot.py [--target /var/tmp/birdd-chroot] [--keep]

1. ``debootstrap --variant=minbase bookworm`` from the mirror this machine's apt uses;
2. the wheel of this checkout (built here, copied in: nothing of birdd is fetched) and ``install.sh``
   run in the chroot: apt packages, the venv, pip (birdd's dependencies from PyPI), ``birdd setup``
   with the place, a broker and a microphone, all checks on;
3. ``systemd-analyze verify`` on the installed units, in the chroot;
4. the service started as its unit says: no systemd runs as PID 1 in a chroot, so the script does
   what it would: the ``DynamicUser=`` state link ``/var/lib/birdd -> private/birdd``, the
   ``WorkingDirectory=`` and ``Environment=``, then the ``ExecStart=`` command line (as root, not a
   dynamic user), until ``birdd/<station>/status`` says ``online``; then the web unit's, until the
   address setup printed serves the page;
5. ``install.sh`` again with the same arguments: ``birdd setup`` must find nothing to change;
6. ``birdd setup --uninstall --purge``: the units, config, manifest and data must be gone.

The broker is the chroot's own mosquitto (install.sh installs it), started by hand on a free loopback
port; the microphone an ALSA file device (``/root/.asoundrc``, two minutes of noise), opened through
PortAudio as a sound card would be. Prints each step's wall time, and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
STATION = ("--lat", "42.45", "--lon", "-76.50", "--station", "garden", "--mic", "birdtest")
RATE = 48_000
ASOUNDRC = """pcm.birdtest {
    type plug
    slave { pcm "birdfile"  format S16_LE  rate 48000  channels 1 }
}
pcm.birdfile {
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "/root/in.raw"
    format "raw"
}
"""
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
POLICY_RC = "#!/bin/sh\n# no daemon starts while packages are installed in the chroot\nexit 101\n"


def mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or a ``deb`` line)."""
    text = SOURCES.read_text() if SOURCES.exists() else Path("/etc/apt/sources.list").read_text()
    found = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
    if not found:
        sys.exit("no Debian mirror found in the apt sources")
    return found.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Steps:
    """Runs and times the steps; each command's output goes to the log."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.times: list[tuple[str, float]] = []

    def run(self, what: str, argv: list[str], **kwargs) -> str:
        print(f"== {what}: {shlex.join(argv)}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        elapsed = time.monotonic() - started
        with self.log.open("a") as log:
            log.write(f"== {what} ({elapsed:.1f} s, exit {proc.returncode}): {shlex.join(argv)}\n"
                      f"{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0:
            sys.exit(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        self.times.append((what, elapsed))
        print(f"   {elapsed:.1f} s", flush=True)
        return proc.stdout

    def timed(self, what: str, seconds: float) -> None:
        self.times.append((what, seconds))
        print(f"== {what}: {seconds:.1f} s", flush=True)


class Chroot:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.mounts: list[Path] = []

    def mount(self) -> None:
        for source, where, options in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--bind"]),
                                       ("/dev/pts", "dev/pts", ["--bind"]), ("sysfs", "sys", ["-t", "sysfs"])):
            subprocess.run(["mount", *options, source, str(self.target / where)], check=True)
            self.mounts.append(self.target / where)

    def umount(self) -> None:
        for where in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(where)], check=False)
        self.mounts.clear()

    def argv(self, *command: str, env: dict[str, str] | None = None) -> list[str]:
        variables = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        return ["chroot", str(self.target), "env", "-i", *(f"{k}={v}" for k, v in variables.items()), *command]

    def path(self, inside: str) -> Path:
        return self.target / inside.lstrip("/")


def unit_command(unit_text: str) -> tuple[list[str], dict[str, str], str]:
    """``ExecStart=``, ``Environment=`` and ``WorkingDirectory=`` of a unit."""
    lines = dict(re.findall(r"^(ExecStart|WorkingDirectory)=(.*)$", unit_text, re.M))
    env = dict(item.split("=", 1) for line in re.findall(r"^Environment=(.*)$", unit_text, re.M)
               for item in shlex.split(line))
    return shlex.split(lines["ExecStart"]), env, lines.get("WorkingDirectory", "/")


def wait_online(port: int, topic: str, timeout: float) -> float:
    """Seconds until ``topic`` carries ``online`` (from the subscription)."""
    online = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="setup-chroot-bench")
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)
    client.on_message = lambda c, u, m: m.payload == b"online" and online.set()
    started = time.monotonic()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not online.wait(timeout):
            sys.exit(f"no 'online' on {topic} within {timeout:g} s")
        return time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()


def wait_page(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop(process: subprocess.Popen) -> int:
    process.terminate()
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def build_wheel(steps: Steps, into: Path) -> Path:
    steps.run("build the wheel of this checkout", [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                                                   str(CHECKOUT), "-w", str(into)])
    (wheel,) = into.glob("birdd-*.whl")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=Path("/var/tmp/birdd-chroot"))
    parser.add_argument("--keep", action="store_true", help="Leave the chroot in place.")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        sys.exit("needs root and debootstrap (apt-get install debootstrap)")
    if args.target.exists():
        sys.exit(f"{args.target} exists: remove it first")
    work = Path(tempfile.mkdtemp(prefix="birdd-setup-chroot-"))
    steps = Steps(work / "log.txt")
    print(f"log: {steps.log}", flush=True)
    wheel = build_wheel(steps, work / "dist")
    began = time.monotonic()
    steps.run(f"debootstrap bookworm from {mirror()}", ["debootstrap", "--variant=minbase", "bookworm",
                                                         str(args.target), mirror()])
    chroot = Chroot(args.target)
    processes: list[subprocess.Popen] = []
    try:
        chroot.mount()
        shutil.copy("/etc/resolv.conf", chroot.path("/etc/resolv.conf"))
        # this machine's TLS trust too: its network may reach PyPI through a proxy whose CA only the host knows
        shutil.copy(HOST_CA, chroot.path("/root/host-ca.crt"))
        chroot.path("/usr/sbin/policy-rc.d").write_text(POLICY_RC)
        chroot.path("/usr/sbin/policy-rc.d").chmod(0o755)
        inbox = chroot.path("/root/birdd")
        inbox.mkdir(parents=True)
        shutil.copy(wheel, inbox)
        shutil.copy(CHECKOUT / "install.sh", inbox)
        chroot.path("/root/.asoundrc").write_text(ASOUNDRC)
        noise = np.random.default_rng(7).integers(-3000, 3000, 120 * RATE).astype("<i2")
        chroot.path("/root/in.raw").write_bytes(noise.tobytes())

        port = free_port()
        install = chroot.argv("sh", "/root/birdd/install.sh", *STATION, "--broker", f"127.0.0.1:{port}",
                              "--web-port", str(free_port()),
                              env={"BIRDD_PACKAGE": f"/root/birdd/{wheel.name}", "PIP_CERT": "/root/host-ca.crt"})
        # the broker must answer setup's check: Debian's mosquitto, installed by the first part of install.sh
        steps.run("mosquitto first (no systemd starts it in a chroot)", chroot.argv(
            "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends mosquitto"))
        broker = subprocess.Popen(chroot.argv("mosquitto", "-p", str(port)), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        processes.append(broker)
        time.sleep(1)
        first = steps.run("install.sh (first run: apt, venv, pip, birdd setup)", install, timeout=3600)
        print(first)
        address = re.search(r"the page: (\S+)", first).group(1)

        units = ["/etc/systemd/system/birdd.service", "/etc/systemd/system/birdd-web.service"]
        steps.run("systemd-analyze verify (in the chroot)", chroot.argv("systemd-analyze", "verify", *units))

        state = chroot.path("/var/lib/birdd")
        state.symlink_to("private/birdd")  # what systemd does for StateDirectory= of a DynamicUser= unit
        for unit, topic_or_url in ((units[0], "birdd/garden/status"), (units[1], address)):
            argv, env, cwd = unit_command(chroot.path(unit).read_text())
            started = time.monotonic()
            command = chroot.argv("sh", "-c", f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}", env=env)
            log = (work / f"{Path(unit).stem}.log").open("wb")
            processes.append(subprocess.Popen(command, stdout=log, stderr=log))
            if unit == units[0]:
                wait_online(port, topic_or_url, 300)
                steps.timed(f"{Path(unit).name}: ExecStart -> 'online' on {topic_or_url}", time.monotonic() - started)
            else:
                body = wait_page(topic_or_url, 120)
                assert b"<html" in body.lower(), body[:200]
                steps.timed(f"{Path(unit).name}: ExecStart -> the page at {topic_or_url}", time.monotonic() - started)
        for process in processes[1:]:
            print(f"   stopped, exit {stop(process)}", flush=True)
        del processes[1:]

        again = steps.run("install.sh again (idempotence)", install, timeout=3600)
        print(again)
        if "nothing to change" not in again:
            sys.exit("the second run changed something")
        removal = steps.run("birdd setup --uninstall --purge", chroot.argv(
            "/opt/birdd/.venv/bin/birdd", "setup", "--uninstall", "--purge"))
        print(removal)
        left = [p for p in ("/etc/birdd", *units, "/var/lib/private/birdd", "/var/lib/birdd",
                            "/etc/systemd/system/multi-user.target.wants/birdd.service")
                if os.path.lexists(chroot.path(p))]
        if left:
            sys.exit(f"uninstall left {left}")
        steps.timed("everything after the wheel build", time.monotonic() - began)
    finally:
        for process in processes:
            stop(process)
        chroot.umount()
        mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if str(args.target) in line]
        if mounted:
            print(f"still mounted, so {args.target} is kept: {mounted}")
        elif not args.keep:
            shutil.rmtree(args.target, ignore_errors=True)
    print("\n| step | wall time |\n|---|---|")
    for what, seconds in steps.times:
        print(f"| {what} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
