"""``birdd train`` is deterministic for a seed: the same corpus and recipe give byte-identical arrays."""

import json
from dataclasses import replace

import pytest
from model_fixtures import SMALL_RECIPE

from trainer.train import train

pytestmark = pytest.mark.integration


def array_digests(bundle) -> dict[str, str]:
    files = json.loads((bundle / "manifest.json").read_text())["files"]
    return {name: entry["sha256"] for name, entry in files.items()}


def test_same_seed_same_bundle_other_seed_other_bundle(synthetic_corpus, trained_model, tmp_path):
    again = train(synthetic_corpus, tmp_path / "again", SMALL_RECIPE, progress=False)
    assert array_digests(again) == array_digests(trained_model)
    other = train(synthetic_corpus, tmp_path / "other", replace(SMALL_RECIPE, seed=1), progress=False)
    assert array_digests(other)["codebook.npy"] != array_digests(trained_model)["codebook.npy"]
