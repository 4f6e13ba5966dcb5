"""Bundles are plain arrays with checksums; tampered or incompatible bundles are refused by name."""

import json
import shutil

import numpy as np
import pytest

from daemon.errors import BundleError
from daemon.model.bundle import read_bundle, write_bundle
from daemon.model.loader import load_model


@pytest.fixture
def bundle_copy(trained_model, tmp_path):
    return shutil.copytree(trained_model, tmp_path / "model")


def test_round_trip_has_no_pickles(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int32)}
    path = write_bundle(tmp_path / "m", {"note": "x"}, arrays)
    manifest, loaded = read_bundle(path)
    assert manifest["note"] == "x" and set(manifest["files"]) == {"a.npy", "b.npy"}
    assert all(np.array_equal(arrays[k], loaded[k]) for k in arrays)
    with pytest.raises(BundleError, match="pickle"):
        write_bundle(tmp_path / "m2", {}, {"o": np.array([{"x": 1}], dtype=object)})
    assert not (tmp_path / "m2").exists()


def test_rewrite_replaces_atomically(tmp_path):
    write_bundle(tmp_path / "m", {"v": 1}, {"a": np.zeros(2)})
    write_bundle(tmp_path / "m", {"v": 2}, {"b": np.ones(2)})
    manifest, arrays = read_bundle(tmp_path / "m")
    assert manifest["v"] == 2 and set(arrays) == {"b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_manifest_describes_the_model(trained_model):
    model = load_model(trained_model)
    manifest = model.manifest
    assert manifest["format_version"] == 1 and manifest["backend"] == "stsg"
    assert [s["code"] for s in manifest["species"]] == model.codes
    assert manifest["training_data"]["recordings"] == 24
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())


def test_tampered_array_is_refused(bundle_copy):
    path = bundle_copy / "codebook.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"codebook\.npy: sha256 does not match"):
        load_model(bundle_copy)


def test_missing_file_and_bad_version_are_refused(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        load_model(bundle_copy)
    manifest["format_version"] = 1
    manifest_path.write_text(json.dumps(manifest))
    (bundle_copy / "idf.npy").unlink()
    with pytest.raises(BundleError, match=r"idf\.npy: listed in the manifest but missing"):
        load_model(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no model manifest"):
        load_model(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_model(tmp_path)


def test_parts_that_do_not_fit_are_refused_at_load(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["backend_params"]["pooling"]["blocks"] = ["mel_mean"]  # 64 values for a head of more inputs
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"window vectors of shape \(64,\), the head expects"):
        load_model(bundle_copy)


def test_malformed_arrays_are_bundle_errors(bundle_copy, tmp_path):
    manifest, arrays = read_bundle(bundle_copy)
    arrays["head_weights"] = arrays["head_weights"][:, 0]  # 1-D
    write_bundle(tmp_path / "bad", {k: v for k, v in manifest.items() if k not in ("files", "format",
                                                                               "format_version")}, arrays)
    with pytest.raises(BundleError, match="malformed model"):
        load_model(tmp_path / "bad")


@pytest.mark.parametrize(("key", "value"), [("sample_rate", 48000), ("window_seconds", 3), ("sample_rate", None)])
def test_runtime_parameters_are_checked_at_load(bundle_copy, key, value):
    manifest_path = bundle_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest[key] = value
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=rf"manifest.json: {key} is {value!r}, this birdd runs at"):
        load_model(bundle_copy)
