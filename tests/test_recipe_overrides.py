"""``Recipe.with_override``: the dotted KEY=VALUE settings of ``birdd train --set`` and ``bench/crossval.py``."""

import pytest

from trainer.recipe import Recipe


def test_values_are_parsed_by_the_field_type():
    recipe = (Recipe().with_override("word2vec.window", "5").with_override("head.l2", "1e-3")
              .with_override("pooling", "emb_mean,tfidf").with_override("tokenizer.l2", "true")
              .with_override("synthesis.extra_call_probability", "").with_override("synthesis.snr_db", "0,10"))
    assert recipe.word2vec.window == 5 and recipe.head.l2 == 1e-3 and recipe.tokenizer.l2 is True
    assert recipe.pooling == ("emb_mean", "tfidf")
    assert recipe.synthesis.extra_call_probability == () and recipe.synthesis.snr_db == (0.0, 10.0)
    assert Recipe().word2vec.window == 10  # the default is untouched
    assert Recipe().with_override("pooling", "").with_override("pooling", " tfidf , mel_max").pooling == (
        "tfidf", "mel_max")  # element type from the annotation, not from the (empty) current value


@pytest.mark.parametrize("key, value, message", [
    ("word2vec.windw", "3", "word2vec.windw: no such recipe setting"),
    ("head", "3", "head: a group of settings"),
    ("head.max_iter", "many", "head.max_iter=many: expected a whole number"),
    ("head.max_iter", "1.5", "head.max_iter=1.5: expected a whole number"),
    ("head.l2", "lots", "head.l2=lots: expected a number"),
    ("tokenizer.l2", "maybe", "tokenizer.l2=maybe: expected true or false"),
    ("seed.x", "1", "seed.x: no such recipe setting"),
    ("synthesis.snr_db", "5", "synthesis.snr_db=5: expected 2 comma-separated values"),
    ("front_end.hop", "0", "front_end.hop=0: front end: invalid hop"),
])
def test_bad_settings_name_the_key(key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Recipe().with_override(key, value)
