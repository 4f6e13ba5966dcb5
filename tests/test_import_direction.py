"""The runtime never imports the trainer (the trainer imports the runtime)."""

import ast
from pathlib import Path

DAEMON = Path(__file__).resolve().parent.parent / "daemon"


def test_daemon_never_imports_trainer():
    offenders = []
    for path in DAEMON.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "trainer" or n.startswith("trainer.")]
    assert not offenders
    assert len(list(DAEMON.rglob("*.py"))) > 10  # the walk saw the package
