"""Mutated model bundles: ``load_model`` and ``birdd info`` load them or refuse them with one line naming them.

Mutations: a manifest field removed or retyped (anywhere in the manifest), an array replaced by one
of the wrong shape or dtype, an ``.npy`` truncated; with the manifest's checksum updated to match
(so the deeper checks are reached) or left stale. A field the runtime does not read (``created``,
the training summary) may go: the bundle then still loads, the documented result.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_support import assert_one_line_error, fuzz_settings, no_hang, run_cli
from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import BundleError
from daemon.model.bundle import MANIFEST, sha256_file
from daemon.model.loader import Model, load_model

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5)

odd_arrays = st.one_of(
    st.sampled_from([np.zeros(()), np.zeros(0), np.zeros((0, 3)), np.ones((2, 3, 4)), np.arange(7, dtype=np.int8),
                     np.zeros((3, 3), dtype=np.float16), np.array([True, False]), np.array(["a", "b"]),
                     np.full((4, 4), np.nan), np.full(5, np.inf), np.zeros((1, 1), dtype=np.complex64),
                     np.array([1e308, -1e308])]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON document (dict keys and list indices)."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found = []
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(document: Any, path: tuple) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def bundle_mutations(draw: st.DrawFn, manifest: dict, arrays: list[str]) -> list[tuple]:
    """1..3 mutations, each ``("remove"|"retype", path, value)``, ``("array", name, array, fix_sum)`` or
    ``("truncate", name, fraction, fix_sum)``."""
    paths = sorted(_paths(manifest), key=repr)
    mutations = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["remove", "retype", "array", "truncate"]))
        if kind in ("remove", "retype"):
            mutations.append((kind, draw(st.sampled_from(paths)), draw(json_values)))
        elif kind == "array":
            mutations.append((kind, draw(st.sampled_from(arrays)), draw(odd_arrays), draw(st.booleans())))
        else:
            mutations.append((kind, draw(st.sampled_from(arrays)), draw(st.floats(0, 1)), draw(st.booleans())))
    return mutations


def _apply(bundle: Path, mutations: list[tuple]) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    for mutation in mutations:
        kind = mutation[0]
        try:
            if kind in ("remove", "retype"):
                parent, key = _parent(manifest, mutation[1]), mutation[1][-1]
                if kind == "remove":
                    del parent[key]
                else:
                    parent[key] = mutation[2]
                continue
            name, fix_sum = mutation[1], mutation[3]
            path = bundle / name
            if kind == "array":
                np.save(path, mutation[2], allow_pickle=False)
            else:
                data = path.read_bytes()
                path.write_bytes(data[: int(len(data) * mutation[2])])
            if fix_sum:
                manifest["files"][name]["sha256"] = sha256_file(path)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped what this one aimed at
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _check(bundle: Path) -> None:
    with no_hang(str(bundle)):
        try:
            assert isinstance(load_model(bundle), Model)
            loaded = True
        except BundleError as exc:
            assert str(bundle) in str(exc) and "\n" not in str(exc), str(exc)
            loaded = False
    code, stdout, stderr = run_cli("bundle", "info", str(bundle))
    if loaded:
        assert code == 0 and "species" in stdout, stderr
    else:
        assert code == 1
        assert_one_line_error(stderr, str(bundle))


@pytest.fixture(scope="module")
def pristine(trained_model: Path) -> tuple[dict, list[str]]:
    manifest = json.loads((trained_model / MANIFEST).read_text())
    return manifest, sorted(manifest["files"])


def test_fuzzed_bundles(trained_model: Path, pristine: tuple[dict, list[str]]) -> None:
    manifest, arrays = pristine

    @fuzz_settings(60)
    @given(mutations=bundle_mutations(manifest, arrays))
    def check(mutations: list[tuple]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(shutil.copytree(trained_model, Path(tmp) / "model"))
            _apply(bundle, mutations)
            _check(bundle)

    check()


def test_every_field_removed_and_every_array_truncated(trained_model: Path, pristine: tuple[dict, list[str]],
                                                       tmp_path: Path) -> None:
    """Exhaustive single mutations: each top-level or second-level manifest field removed or set to null, each array
    truncated to half (checksum updated), then replaced by a 0-d array (checksum updated)."""
    manifest, arrays = pristine
    cases = [[(kind, path, None)] for path in _paths(manifest) if len(path) <= 2 for kind in ("remove", "retype")]
    cases += [[("truncate", name, 0.5, True)] for name in arrays]
    cases += [[("array", name, np.zeros(()), True)] for name in arrays]
    for i, mutations in enumerate(cases):
        bundle = Path(shutil.copytree(trained_model, tmp_path / f"m{i}"))
        _apply(bundle, mutations)
        _check(bundle)
        shutil.rmtree(bundle)
