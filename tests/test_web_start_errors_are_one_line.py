"""``birdd web`` that cannot start says why in one line: a taken port, a missing password, a bad key."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST
from daemon_process import write_config

BIRDD = str(Path(sys.executable).with_name("birdd"))


def run_web(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIRDD, "web", "-c", str(config)], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.integration
def test_a_taken_port_a_missing_password_and_a_bad_key(tmp_path):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        taken_port = run_web(write_config(tmp_path / "taken.toml", {"web": {"bind": HOST, "port": port}}))
    no_password = run_web(write_config(tmp_path / "auth.toml", {"web": {
        "bind": HOST, "port": port, "auth": "token", "password_env": "BIRDD_TEST_NO_SUCH_VAR"}}))
    bad_key = run_web(write_config(tmp_path / "bad.toml", {"web": {"auth": "digest"}}))
    assert taken_port.returncode == 1
    assert taken_port.stderr.startswith("birdd: error: web.bind/web.port: cannot listen on")
    assert no_password.returncode == 2 and "web.password_file or the web.password_env" in no_password.stderr
    assert bad_key.returncode == 2 and 'web.auth: expected "none", "token" or "basic"' in bad_key.stderr
    for proc in (taken_port, no_password, bad_key):
        assert proc.stderr.startswith("birdd: error: ") and proc.stderr.count("\n") == 1, proc.stderr
