"""config.toml, the documented defaults, names every key of daemon/config.py with its docstring: docs cannot drift."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
import typing
from pathlib import Path

import pytest

import daemon.config
from daemon.config import Config, load_config

DEFAULT = Path(__file__).resolve().parent.parent / "config.toml"
KEY_LINE = re.compile(r"^(# )?(\w+) = ")
ARRAY_OF_TABLES = re.compile(r"^# \[\[(\w+)\]\]")
"""an array of tables ([[webhooks]]) is shown commented out: by default it has no entry"""


def section_class(name: str) -> type:
    """The dataclass of section ``name`` (the item class of an array of tables)."""
    hint = typing.get_type_hints(Config)[name]
    return typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint


def field_docstrings() -> dict[str, dict[str, str]]:
    """``section -> key -> docstring`` read from the source of daemon/config.py."""
    section_of = {section_class(name).__name__: name for name in typing.get_type_hints(Config)}
    tree = ast.parse(Path(daemon.config.__file__).read_text())
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in section_of:
            body = node.body
            docs[section_of[node.name]] = {
                field.target.id: " ".join(doc.value.value.split())
                for field, doc in itertools.pairwise(body)
                if isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
            }
    return docs


def documented_keys() -> dict[str, dict[str, tuple[str, bool]]]:
    """``section -> key -> (comment above it, commented out?)`` as written in config.toml."""
    sections: dict[str, dict[str, tuple[str, bool]]] = {}
    section, comment = None, []
    for line in DEFAULT.read_text().splitlines():
        key = KEY_LINE.match(line)
        array = ARRAY_OF_TABLES.match(line)
        if line.startswith("[") or array:
            section, comment = array.group(1) if array else line.strip("[]"), []
            sections[section] = {}
        elif key and section is not None:
            sections[section][key.group(2)] = (" ".join(comment), bool(key.group(1)))
            comment = []
        elif line.startswith("# "):
            comment += line[2:].split()
    return sections


def test_default_config_loads_and_equals_the_code_defaults():
    assert load_config(DEFAULT) == Config()


def test_every_section_and_key_is_present_in_order():
    written = documented_keys()
    expected = {s.name: [f.name for f in dataclasses.fields(section_class(s.name))]
                for s in dataclasses.fields(Config)}
    assert list(written) == list(expected)
    for section, keys in expected.items():
        assert list(written[section]) == keys, section


@pytest.mark.parametrize("section", [f.name for f in dataclasses.fields(Config)])
def test_every_key_carries_its_docstring_as_comment(section):
    docs, written = field_docstrings()[section], documented_keys()[section]
    assert docs, f"no field docstrings found for [{section}]"
    for key, doc in docs.items():
        comment, _ = written[key]
        assert doc in comment, f"{section}.{key}: comment {comment!r} does not carry the docstring {doc!r}"


def test_only_keys_without_a_toml_value_are_commented_out():
    """A default of None cannot be written in TOML: those keys alone are shown commented out."""
    for section in dataclasses.fields(Config):
        instance = getattr(Config(), section.name)
        for key, (_, commented) in documented_keys()[section.name].items():
            if isinstance(instance, list):  # an array of tables: every key of its example is commented out
                assert commented, f"{section.name}.{key}"
            else:
                assert commented == (getattr(instance, key) is None), f"{section.name}.{key}"
