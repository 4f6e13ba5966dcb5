"""docs/stations.md, "a station in one command": every command in it is run here or by a named test.

The commands that need a Debian host with systemd (apt-get, install.sh, the unit, systemctl) are checked
where this project checks them; the birdd commands, the config and ``mosquitto_sub`` are run here for
real: ``birdd setup`` with the doc's arguments under a root folder (install.sh's too), the all-classes
BirdNET bundle, the species lists, and ``birdd run`` with the doc's config (range filter on) publishing
to a real mosquitto that ``mosquitto_sub`` watches.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_process import Daemon, write_config

from daemon.config import config_from_dict, load_config
from daemon.constants import SAMPLE_RATE
from daemon.model.range_filter import week_of

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "stations.md"
BIRDD = str(Path(sys.executable).with_name("birdd"))

ELSEWHERE = {
    "git clone <this repository> birdd": "a copy of this repository",
    "sudo sh birdd/install.sh ": "bench/setup_chroot.py (a fresh Debian); its arguments: test_the_one_command",
    "sudo apt-get install -y": "Makefile APT_PACKAGES (make test installs them; python3-venv for the venv)",
    "sudo git clone": "a copy of this repository",
    "sudo python3 -m venv": "make venv",
    "sudo /opt/birdd/.venv/bin/pip install '/opt/birdd[birdnet]'": "make venv installs the birdnet extra; "
    "test_zero_shot_needs_no_training_extra",
    "sudo install -d -m 0700 /var/lib/private": "docs/service.md's install",
    "sudo install -D -m 0644 /opt/birdd/config.toml /etc/birdd/config.toml": "the toml block is loaded here",
    "sudoedit /etc/birdd/config.toml": "an editor",
    "sudo install -m 0644 /opt/birdd/systemd/birdd.service": "tests/test_systemd_unit.py",
    "sudo systemctl daemon-reload": "tests/test_systemd_unit.py (no systemd runs here)",
    "sudo systemctl enable --now birdd": "tests/test_systemd_unit.py (no systemd runs here)",
}
RUN_HERE = ("sudo /opt/birdd/.venv/bin/birdd ", "/opt/birdd/.venv/bin/birdd ", "birdd ", "mosquitto_sub ")

pytestmark = pytest.mark.integration


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def commands() -> list[str]:
    return [line.split("  #")[0].strip() for block in blocks("sh") for line in block.splitlines() if line.strip()]


def birdd_args(command: str) -> list[str]:
    """The arguments of a birdd command line (before any pipe)."""
    words = shlex.split(command.split("|")[0])
    return words[words.index(next(w for w in words if w.endswith("birdd"))) + 1:]


def test_every_command_is_run_here_or_by_a_named_test():
    unknown = [c for c in commands() if not c.startswith(RUN_HERE) and not any(c.startswith(p) for p in ELSEWHERE)]
    assert not unknown, f"commands in {DOC.name} that no test exercises: {unknown}"
    apt = next(c for c in commands() if c.startswith("sudo apt-get install"))
    makefile = re.search(r"APT_PACKAGES\s*:=(.*)", (ROOT / "Makefile").read_text()).group(1).split()
    assert set(apt.split()[4:]) - set(makefile) == {"python3-venv"}


def test_zero_shot_needs_no_training_extra():
    probe = ("import sys, trainer.cli, trainer.tflite_zero_shot; "
             "print(sorted({'faiss', 'gensim', 'sklearn', 'librosa'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def setup_arguments() -> list[list[str]]:
    """The arguments of each ``birdd setup`` of the doc, in order, install.sh's first (it hands them on)."""
    (install,) = (shlex.split(c)[3:] for c in commands() if c.startswith("sudo sh birdd/install.sh "))
    return [install, *(birdd_args(c)[1:] for c in commands()
                       if c.startswith(RUN_HERE) and "birdd " in c and birdd_args(c)[0] == "setup")]


def test_install_sh_hands_its_arguments_to_birdd_setup():
    script = (ROOT / "install.sh").read_text()
    assert subprocess.run(["sh", "-n", str(ROOT / "install.sh")]).returncode == 0
    assert script.rstrip().endswith('exec "$VENV/bin/birdd" setup "$@"')
    apt = set(re.search(r'APT_PACKAGES="(.*?)"', script).group(1).replace("$BROKER", "mosquitto").split())
    makefile = re.search(r"APT_PACKAGES\s*:=(.*)", (ROOT / "Makefile").read_text()).group(1).split()
    assert apt - set(makefile) == {"python3", "python3-venv", "ca-certificates", "procps"}  # procps: /bin/kill


def test_the_one_command(range_filter, tmp_path):
    """The doc's setup commands under a root folder: install (BirdNET's model made), a dry run, uninstall."""
    root = tmp_path / "root"
    runs = setup_arguments()
    assert [args[0] for args in runs[1:]] == ["--lat", "--uninstall"] and "--dry-run" in runs[1]
    for args in runs:
        before = sorted(root.rglob("*")) if root.exists() else []
        proc = subprocess.run([BIRDD, "setup", *args, "--root", str(root), "--skip-checks"], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"birdd setup {shlex.join(args)}: {proc.stderr}"
        if "--dry-run" in args:
            assert sorted(root.rglob("*")) == before and "would update" in proc.stdout, proc.stdout
        elif "--uninstall" not in args:
            assert "make the all-classes BirdNET model" in proc.stdout
            assert load_config(root / "etc/birdd/config.toml").station.name == "garden"
            assert (root / "var/lib/private/birdd/model/manifest.json").is_file()
    assert not root.exists()


def test_the_five_minutes(range_filter, tmp_path, mosquitto):
    model = tmp_path / "model"
    for command in (c for c in commands() if c.startswith(RUN_HERE) and "birdd " in c
                    and birdd_args(c)[0] != "setup"):
        args = [str(model) if a == "/var/lib/private/birdd/model" else a for a in birdd_args(command)]
        args = [str(tmp_path / "species.txt") if a == "/etc/birdd/species.txt" else a for a in args]
        proc = subprocess.run([BIRDD, *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command}: {proc.stderr}"
        if args[0] == "species" and "-o" not in args:
            assert proc.stdout.startswith("# birdd species --lat") and "\t" in proc.stdout.splitlines()[1]
    assert (tmp_path / "species.txt").read_text().startswith("# birdd species --lat 42.45 --lon -76.5 --week -1")

    (doc_config,) = blocks("toml")
    tables = tomllib.loads(doc_config)
    config_from_dict(tables)  # valid as written
    assert tables["detection"]["range_filter"] and tables["station"]["name"] == "garden"
    (watch,) = (c for c in commands() if c.startswith("mosquitto_sub"))
    sub = subprocess.Popen([*shlex.split(watch.replace("localhost", mosquitto.host)), "-p", str(mosquitto.port),
                            "-W", "60"], stdout=subprocess.PIPE, text=True)
    try:
        tables["audio"] = {"source": "file", "files": [str(tmp_path / "silence.wav")], "realtime": True,
                           "loop": True}
        tables["model"] = {"path": str(model)}
        tables["mqtt"] = {"host": mosquitto.host, "port": mosquitto.port, "status_interval_s": 0.5}
        tables["outbox"] = {"path": str(tmp_path / "outbox.sqlite")}
        write_silence(tmp_path / "silence.wav")
        daemon = Daemon(write_config(tmp_path / "config.toml", tables), tmp_path / "daemon.log")
        try:
            daemon.wait_for_log(f"range filter: week {week_of(date.today())} at 42.4500, -76.5000", timeout=60)
            lines = read_until(sub, lambda line: '"windows_out_of_range"' in line)
        finally:
            daemon.close()
    finally:
        sub.kill()
        sub.wait(10)
    assert "birdd/garden/status online" in lines


def write_silence(path: Path) -> None:
    sf.write(path, np.zeros(12 * SAMPLE_RATE, np.float32), SAMPLE_RATE)


def read_until(process: subprocess.Popen, done) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line.strip())
        if done(line):
            return lines
    raise AssertionError(f"mosquitto_sub ended before the expected message: {lines}")
