"""Mutated, junk and empty config files: ``load_config`` and ``birdd run -c`` give one line naming the file.

A mutation that still makes a valid configuration is a documented result: ``birdd run`` then stops at
its next step, the (absent) model bundle, with one line naming it; and the service built from that
configuration with a real model (not started) either builds or raises one ``BirddError``: no value
that passes validation may break a constructor (a ring of 1e300 seconds, a NUL in a path).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz_support import assert_one_line_error, fuzz_settings, no_hang, run_cli, toml_document
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import Config, load_config
from daemon.errors import BirddError, ConfigError
from daemon.service.service import Service

pytestmark = pytest.mark.integration

DOCUMENTED = tomllib.loads((Path(__file__).parents[1] / "config.toml").read_text())
NO_MODEL = "/nonexistent/birdd-fuzz-model"
STATE_DIR = "/var/lib/birdd"
DEFAULTS = Config()
STATE_PATHS = [(section.name, key.name) for section in dataclasses.fields(DEFAULTS)
               if section.name != "model" and dataclasses.is_dataclass(getattr(DEFAULTS, section.name))
               for key in dataclasses.fields(getattr(DEFAULTS, section.name))
               if str(getattr(getattr(DEFAULTS, section.name), key.name)).startswith(f"{STATE_DIR}/")]
"""(section, key) of every file or directory the daemon writes: each defaults to a place in the state directory
(the model is there too, but only read; the test gives it the trained one)"""

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 5e-324, 0.0, -0.0]),
    st.booleans(), text,
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=6)


@st.composite
def mutated_config(draw: st.DrawFn) -> dict[str, Any]:
    """The documented config with 1..4 mutations: a key removed, an unknown key, a value retyped, a table replaced."""
    tables = copy.deepcopy(DOCUMENTED)
    tables["model"]["path"] = NO_MODEL
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(tables)))
        kind = draw(st.sampled_from(["remove", "unknown", "retype", "retype", "retype", "table"]))
        table = tables[section]
        if kind == "table" or not isinstance(table, dict) or not table:
            tables[section] = draw(values)
        elif kind == "remove":
            del table[draw(st.sampled_from(sorted(table)))]
        elif kind == "unknown":
            table[draw(text)] = draw(values)
        else:
            table[draw(st.sampled_from(sorted(table)))] = draw(values)
    if draw(st.booleans()):
        tables[draw(text)] = draw(values)  # an unknown section or top-level key
    return tables


config_files = st.one_of(
    mutated_config().map(lambda tables: toml_document(tables).encode()),
    st.binary(max_size=200),
    st.just(b""),
    text.map(str.encode),
)


def _inside(config: Config, model: Path, tmp: Path) -> Config:
    """``config`` with the trained model, and every file and directory the daemon writes placed in ``tmp``."""
    sections: dict[str, Any] = {"model": dataclasses.replace(config.model, path=str(model))}
    for section, key in STATE_PATHS:
        table = sections.get(section, getattr(config, section))
        sections[section] = dataclasses.replace(table, **{key: str(tmp / f"{section}.{key}")})
    return dataclasses.replace(config, **sections)


def _modified(directory: Path) -> dict[Path, int]:
    """Every file and directory under ``directory`` and its modification time."""
    return {path: path.lstat().st_mtime_ns for path in directory.rglob("*")} if directory.is_dir() else {}


@pytest.fixture(autouse=True)
def nothing_written_outside_tmp() -> Iterator[None]:
    """Nothing is written under the default state directory, nor made in the working directory (where a mutated
    relative path would land)."""
    state, here = _modified(Path(STATE_DIR)), set(Path.cwd().iterdir())
    yield
    assert _modified(Path(STATE_DIR)) == state
    assert set(Path.cwd().iterdir()) == here


def test_every_path_the_daemon_writes_is_redirected():
    assert {("outbox", "path"), ("store", "path"), ("clips", "dir"), ("archive", "dir")} <= set(STATE_PATHS)


def _check(document: bytes, model: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_bytes(document)
        with no_hang(str(path)):
            try:
                config = load_config(path)
            except ConfigError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
                config = None
        assert config is None or isinstance(config, Config)
        code, _, stderr = run_cli("config", "run", "-c", str(path))
        assert code == (2 if config is None else 1), stderr
        assert_one_line_error(stderr, str(path) if config is None else config.model.path)
        if config is not None:
            _build_service(config, model, Path(tmp))


def _build_service(config: Config, model: Path, tmp: Path) -> None:
    config = _inside(config, model, tmp)
    assert all(Path(getattr(getattr(config, section), key)).is_relative_to(tmp) for section, key in STATE_PATHS)
    with no_hang("Service(config)"):
        try:
            service = Service(config)
        except BirddError as exc:
            assert "\n" not in str(exc), str(exc)
            return
    service.outbox.close()


@fuzz_settings(120)
@given(document=config_files)
def test_fuzzed_config_files(document: bytes, trained_model: Path) -> None:
    _check(document, trained_model)


CORPUS = Path(__file__).parent / "fuzz_corpus" / "config"


@pytest.mark.parametrize("case", sorted(CORPUS.glob("*.toml")), ids=lambda p: p.stem)
def test_config_corpus(case: Path, trained_model: Path) -> None:
    """Values that once passed validation and broke the daemon later (a ring of 1e300 s, a NUL in a path, a
    delay that overflows the thread timers), and a key whose name holds a newline (once a two-line error):
    each is now refused at start-up in one line naming the key."""
    with pytest.raises(ConfigError, match=rf"^{case}: [a-z_]+\.\S+: [^\n]*$"):
        load_config(case)
    _check(case.read_bytes(), trained_model)
