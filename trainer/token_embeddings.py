"""Token embeddings (gensim skip-gram) and token idf weights from token sequences."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from gensim.models import Word2Vec

from trainer.recipe import Word2VecParams

log = logging.getLogger(__name__)

SENTENCE_TOKENS = 1000
"""Token sequences are cut into sentences of this many tokens (gensim truncates at 10,000)."""


class Sentences:
    """The token sequences as gensim sentences (lists of token strings, :data:`SENTENCE_TOKENS` long), made
    afresh on every pass over them: no list of every token as a string is ever held."""

    def __init__(self, sequences: list[np.ndarray]) -> None:
        self.sequences = sequences

    def __iter__(self) -> Iterator[list[str]]:
        for seq in self.sequences:
            for i in range(0, len(seq), SENTENCE_TOKENS):
                yield [str(t) for t in seq[i: i + SENTENCE_TOKENS]]

    def __len__(self) -> int:
        return sum(-(-len(seq) // SENTENCE_TOKENS) for seq in self.sequences)


def fit_token_vectors(sequences: list[np.ndarray], codebook_size: int, params: Word2VecParams,
                      seed: int) -> np.ndarray:
    """Skip-gram vectors for every token id, shape ``(codebook_size, vector_size)``; unseen tokens get zeros.

    One worker thread, so the result is deterministic for a given seed.
    """
    sentences = Sentences(sequences)
    model = Word2Vec(sentences=sentences, vector_size=params.vector_size, window=params.window, sg=1,
                     negative=params.negative, ns_exponent=params.ns_exponent, epochs=params.epochs,
                     min_count=params.min_count, sample=params.sample, seed=seed, workers=1)
    vectors = np.zeros((codebook_size, params.vector_size), dtype=np.float32)
    for word, index in model.wv.key_to_index.items():
        vectors[int(word)] = model.wv.vectors[index]
    log.info("skip-gram: %d of %d tokens embedded in %d dimensions from %d sentences",
             len(model.wv.key_to_index), codebook_size, params.vector_size, len(sentences))
    return vectors


def fit_idf(sequences: list[np.ndarray], codebook_size: int, document_tokens: int) -> np.ndarray:
    """Smoothed inverse document frequency of each token, documents being runs of ``document_tokens``."""
    documents = 0
    frequency = np.zeros(codebook_size, dtype=np.float64)
    for seq in sequences:
        for i in range(0, len(seq), document_tokens):
            frequency[np.unique(seq[i: i + document_tokens])] += 1
            documents += 1
    return (np.log((1.0 + documents) / (1.0 + frequency)) + 1.0).astype(np.float32)
