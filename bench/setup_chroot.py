"""End to end: a fresh Debian bookworm (debootstrap) gets a birdd station from install.sh, as a new box would.

    sudo python bench/setup_chroot.py [--boot] [--target /var/tmp/birdd-chroot] [--keep]

1. ``debootstrap --variant=minbase bookworm`` from the mirror this machine's apt uses (with ``--boot``, also
   systemd, systemd-sysv and dbus, then the tree is booted: ``systemd-nspawn -b``, systemd as PID 1);
2. the wheel of this checkout (built here, copied in: nothing of birdd is fetched) and ``install.sh``
   run in the tree: apt packages, the venv, pip (birdd's dependencies from PyPI), ``birdd setup``
   with the place, a broker and a microphone, all checks on;
3. ``systemd-analyze verify`` on the installed units, in the tree;
4. without ``--boot`` (a chroot: no systemd as PID 1) the service is started as its unit says: the
   ``DynamicUser=`` state link ``/var/lib/birdd -> private/birdd``, the ``WorkingDirectory=`` and
   ``Environment=``, then the ``ExecStart=`` command line (as root, not a dynamic user), until
   ``birdd/<station>/status`` says ``online``; then the web unit's, until the address setup printed
   serves the page. With ``--boot``, ``birdd setup`` itself starts the units under the container's
   systemd (sandbox, dynamic user and all): the script waits for ``online`` and the page, then
   ``systemctl restart birdd`` must bring ``offline`` then ``online`` again, with a new main PID;
5. ``install.sh`` again with the same arguments: ``birdd setup`` must find nothing to change;
6. ``birdd setup --uninstall --purge``: the units, config, manifest and data must be gone (booted: and
   systemd must no longer know the units).

The broker is the tree's own mosquitto (install.sh installs it), started by hand (booted: as a
transient unit, ``systemd-run``) on a free loopback port; the container shares this machine's network.
The microphone is an ALSA file device (``/etc/asound.conf``) reading a FIFO that this script feeds
with noise at real time (48 kHz, 16 bit), so the capture is paced as a sound card's is, and reopened
by every process that opens the device (setup's check, the service, the service after its restart).
Prints each step's wall time, and a Markdown table at the end.
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

FIFO = "/usr/local/share/birdtest/in.fifo"
BOOT_PACKAGES = "systemd,systemd-sysv,dbus"

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
STATION = ("--lat", "42.45", "--lon", "-76.50", "--station", "garden", "--mic", "birdtest")
RATE = 48_000
ASOUND_CONF = """pcm.birdtest {
    type plug
    slave { pcm "birdfile"  format S16_LE  rate 48000  channels 1 }
}
pcm.birdfile {
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "/usr/local/share/birdtest/in.fifo"
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


class Booted(Chroot):
    """The tree booted by ``systemd-nspawn -b`` (systemd as PID 1, this machine's network); commands run in it
    through ``nsenter`` into the container's namespaces. Without a system bus here, nspawn neither registers
    with machined nor makes a scope (``--register=no --keep-unit``)."""

    def __init__(self, target: Path, log: Path) -> None:
        super().__init__(target)
        self.log = log
        self.nspawn: subprocess.Popen | None = None
        self.pid1 = 0

    def mount(self) -> None:
        with self.log.open("ab") as log:
            self.nspawn = subprocess.Popen(["systemd-nspawn", "-q", "-D", str(self.target), "-b", "--register=no",
                                            "--keep-unit", "--console=pipe", "-M", "birdd-setup"],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while not self.pid1:
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the container did not boot (see {self.log})")
            self.pid1 = container_init(self.nspawn.pid)
            time.sleep(0.2)
        state = ""
        while state not in ("running", "degraded"):
            if time.monotonic() > deadline:
                sys.exit(f"the container's systemd is {state!r} after 120 s")
            time.sleep(0.5)
            state = subprocess.run(self.argv("systemctl", "is-system-running"), capture_output=True,
                                   text=True).stdout.strip()

    def umount(self) -> None:
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            if self.pid1:
                subprocess.run(self.argv("systemctl", "poweroff"), capture_output=True)
            else:
                self.nspawn.terminate()  # nspawn halts the container
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(10)
        self.nspawn = None

    def argv(self, *command: str, env: dict[str, str] | None = None) -> list[str]:
        variables = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        return ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *(f"{k}={v}" for k, v in variables.items()),
                *command]


def container_init(nspawn: int) -> int:
    """The PID (here) of the systemd that runs as PID 1 in the container of the ``systemd-nspawn`` process
    ``nspawn`` (a descendant of it whose PID in its own namespace is 1), or 0."""
    parents: dict[int, int] = {}
    inits = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
        nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        if re.search(r"^Name:\s+systemd$", status, re.M) and nspid and nspid.group(1).split()[-1] == "1":
            inits.append(int(entry.name))
    for pid in inits:
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != nspawn:
            ancestor = parents.get(ancestor, 0)
        if ancestor == nspawn:
            return pid
    return 0


class MicFeed(threading.Thread):
    """Feeds the FIFO the ALSA file device reads with noise at real time; reopened for each reader."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        os.mkfifo(fifo, 0o666)
        os.chmod(fifo, 0o666)  # the service's dynamic user reads it
        self.fifo = fifo
        self.stop = threading.Event()
        self.readers = 0

    def run(self) -> None:
        chunk = np.random.default_rng(7).integers(-3000, 3000, RATE // 10).astype("<i2").tobytes()
        while not self.stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet (ENXIO)
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            self.readers += 1
            started, sent = time.monotonic(), 0
            try:
                while not self.stop.is_set():
                    os.write(fd, chunk)
                    sent += 1
                    time.sleep(max(0.0, started + sent / 10 - time.monotonic()))
            except OSError:  # the reader closed the device
                pass
            finally:
                os.close(fd)


class StatusWatch:
    """Every payload of a retained status topic, in arrival order."""

    def __init__(self, port: int, topic: str) -> None:
        self.payloads: list[bytes] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="setup-chroot-status")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.on_message = lambda c, u, m: self.payloads.append(m.payload)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def wait_for(self, sequence: list[bytes], since: int, timeout: float) -> float:
        """Seconds until ``sequence`` appeared, in order, among the payloads after the first ``since``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            rest = iter(self.payloads[since:])
            if all(any(p == want for p in rest) for want in sequence):
                return time.monotonic() - started
            time.sleep(0.1)
        sys.exit(f"no {sequence} on the status topic within {timeout:g} s (saw {self.payloads[since:]})")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
    parser.add_argument("--boot", action="store_true", help="Boot the tree with systemd-nspawn: systemd as PID 1.")
    parser.add_argument("--target", type=Path, default=Path("/var/tmp/birdd-chroot"))
    parser.add_argument("--keep", action="store_true", help="Leave the tree in place.")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        sys.exit("needs root and debootstrap (apt-get install debootstrap)")
    if args.boot and shutil.which("systemd-nspawn") is None:
        sys.exit("--boot needs systemd-nspawn (apt-get install systemd-container)")
    if args.target.exists():
        sys.exit(f"{args.target} exists: remove it first")
    work = Path(tempfile.mkdtemp(prefix="birdd-setup-chroot-"))
    steps = Steps(work / "log.txt")
    print(f"log: {steps.log}", flush=True)
    wheel = build_wheel(steps, work / "dist")
    began = time.monotonic()
    include = [f"--include={BOOT_PACKAGES}"] if args.boot else []
    steps.run(f"debootstrap bookworm from {mirror()}", ["debootstrap", "--variant=minbase", *include, "bookworm",
                                                         str(args.target), mirror()])
    tree = Booted(args.target, work / "nspawn.log") if args.boot else Chroot(args.target)
    where = "the booted container" if args.boot else "the chroot"
    processes: list[subprocess.Popen] = []
    feed: MicFeed | None = None
    try:
        shutil.copy("/etc/resolv.conf", tree.path("/etc/resolv.conf"))
        # this machine's TLS trust too: its network may reach PyPI through a proxy whose CA only the host knows
        shutil.copy(HOST_CA, tree.path("/root/host-ca.crt"))
        tree.path("/usr/sbin/policy-rc.d").write_text(POLICY_RC)
        tree.path("/usr/sbin/policy-rc.d").chmod(0o755)
        inbox = tree.path("/root/birdd")
        inbox.mkdir(parents=True)
        shutil.copy(wheel, inbox)
        shutil.copy(CHECKOUT / "install.sh", inbox)
        tree.path("/etc/asound.conf").write_text(ASOUND_CONF)
        tree.path(FIFO).parent.mkdir(parents=True)
        feed = MicFeed(tree.path(FIFO))
        feed.start()
        if args.boot:
            started = time.monotonic()
            tree.mount()
            steps.timed("systemd-nspawn -b: the container's systemd 'running'", time.monotonic() - started)
        else:
            tree.mount()

        port = free_port()
        install = tree.argv("sh", "/root/birdd/install.sh", *STATION, "--broker", f"127.0.0.1:{port}",
                            "--web-port", str(free_port()),
                            env={"BIRDD_PACKAGE": f"/root/birdd/{wheel.name}", "PIP_CERT": "/root/host-ca.crt"})
        # the broker must answer setup's check: Debian's mosquitto, installed by the first part of install.sh
        steps.run("mosquitto first, on a free port", tree.argv(
            "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends mosquitto"))
        if args.boot:
            steps.run("mosquitto as a transient unit", tree.argv("systemd-run", "--unit=bench-broker",
                                                                 "/usr/sbin/mosquitto", "-p", str(port)))
        else:
            processes.append(subprocess.Popen(tree.argv("mosquitto", "-p", str(port)), stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        time.sleep(1)
        status = StatusWatch(port, "birdd/garden/status")
        first = steps.run("install.sh (first run: apt, venv, pip, birdd setup)", install, timeout=3600)
        print(first)
        address = re.search(r"the page: (\S+)", first).group(1)

        units = ["/etc/systemd/system/birdd.service", "/etc/systemd/system/birdd-web.service"]
        steps.run(f"systemd-analyze verify (in {where})", tree.argv("systemd-analyze", "verify", *units))
        if args.boot:
            check_booted_service(steps, tree, status, address, feed)
        else:
            start_by_hand(steps, tree, units, port, address, work, processes)

        again = steps.run("install.sh again (idempotence)", install, timeout=3600)
        print(again)
        if "nothing to change" not in again:
            sys.exit("the second run changed something")
        removal = steps.run("birdd setup --uninstall --purge", tree.argv(
            "/opt/birdd/.venv/bin/birdd", "setup", "--uninstall", "--purge"))
        print(removal)
        left = [p for p in ("/etc/birdd", *units, "/var/lib/private/birdd", "/var/lib/birdd",
                            "/etc/systemd/system/multi-user.target.wants/birdd.service")
                if os.path.lexists(tree.path(p))]
        if left:
            sys.exit(f"uninstall left {left}")
        if args.boot:
            known = subprocess.run(tree.argv("systemctl", "show", "-p", "LoadState", "--value", "birdd",
                                             "birdd-web"), capture_output=True, text=True).stdout.split()
            if known != ["not-found", "not-found"]:
                sys.exit(f"systemd still knows the units after --uninstall: LoadState {known}")
            steps.timed("after --uninstall: systemd's LoadState of both units is not-found", 0.0)
        status.close()
        steps.timed("everything after the wheel build", time.monotonic() - began)
    finally:
        for process in processes:
            stop(process)
        if feed is not None:
            feed.stop.set()
        tree.umount()
        mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if str(args.target) in line]
        if mounted:
            print(f"still mounted, so {args.target} is kept: {mounted}")
        elif not args.keep:
            shutil.rmtree(args.target, ignore_errors=True)
    print("\n| step | wall time |\n|---|---|")
    for what, seconds in steps.times:
        print(f"| {what} | {seconds:.1f} s |")


def start_by_hand(steps: Steps, tree: Chroot, units: list[str], port: int, address: str, work: Path,
                  processes: list[subprocess.Popen]) -> None:
    """A chroot: each unit's service started as the unit says, until 'online' and the page; then stopped."""
    state = tree.path("/var/lib/birdd")
    state.symlink_to("private/birdd")  # what systemd does for StateDirectory= of a DynamicUser= unit
    for unit, topic_or_url in ((units[0], "birdd/garden/status"), (units[1], address)):
        argv, env, cwd = unit_command(tree.path(unit).read_text())
        started = time.monotonic()
        command = tree.argv("sh", "-c", f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}", env=env)
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


def unit_property(tree: Chroot, unit: str, name: str) -> str:
    return subprocess.run(tree.argv("systemctl", "show", "-p", name, "--value", unit), capture_output=True,
                          text=True).stdout.strip()


def check_booted_service(steps: Steps, tree: Chroot, status: StatusWatch, address: str, feed: MicFeed) -> None:
    """Under systemd: setup started both units; 'online', the page, then a restart brings offline and online."""
    steps.timed("birdd.service (started by setup): 'online' on birdd/garden/status",
                status.wait_for([b"online"], 0, 300))
    body = wait_page(address, 120)
    assert b"<html" in body.lower(), body[:200]
    steps.timed(f"birdd-web.service (started by setup): the page at {address}", 0.0)
    pid = unit_property(tree, "birdd", "MainPID")
    user = subprocess.run(tree.argv("ps", "-o", "user=", "-p", pid), capture_output=True, text=True).stdout.strip()
    print(f"   birdd.service: MainPID {pid}, user {user!r}, {unit_property(tree, 'birdd', 'SubState')}; "
          f"microphone opened {feed.readers} time(s)", flush=True)
    time.sleep(10)  # a little real-time audio through the sandboxed service
    seen = len(status.payloads)
    started = time.monotonic()
    steps.run("systemctl restart birdd", tree.argv("systemctl", "restart", "birdd"))
    status.wait_for([b"offline", b"online"], seen, 120)
    steps.timed("systemctl restart birdd: 'offline' then 'online' again", time.monotonic() - started)
    new_pid = unit_property(tree, "birdd", "MainPID")
    states = [unit_property(tree, unit, "ActiveState") for unit in ("birdd", "birdd-web")]
    restarts = unit_property(tree, "birdd", "NRestarts")
    if new_pid in (pid, "0") or states != ["active", "active"] or restarts != "0":
        sys.exit(f"after the restart: MainPID {pid} -> {new_pid}, ActiveState {states}, NRestarts {restarts}")
    print(f"   MainPID {pid} -> {new_pid}, both units active, NRestarts 0 (no crash); microphone opened "
          f"{feed.readers} time(s)", flush=True)
    journal = subprocess.run(tree.argv("journalctl", "-u", "birdd", "--no-pager", "-o", "cat"), capture_output=True,
                             text=True).stdout
    print("   journal of birdd.service (last lines):\n" + "\n".join("     " + line for line in
                                                                  journal.splitlines()[-8:]), flush=True)


if __name__ == "__main__":
    main()
