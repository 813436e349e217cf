"""Product search: BM25 over the text the original indexed, with ``bm25s``.

The original ran Lucene (pyserini) over each product document's ``contents`` with Lucene's
English analyzer and BM25 (k1=0.9, b=0.4, pyserini's defaults), returning at most 50 hits. Here:

* :class:`Tokenizer` approximates that analyzer: Unicode word tokens (keeping ``3.4oz``,
  ``l'eau`` and ``1,000`` whole), English possessives dropped, Lucene's 33 English stop words
  removed, Porter stemming (PyStemmer's ``porter``; ``stemmer="none"`` turns it off).
* :class:`SearchEngine` indexes those tokens with ``bm25s`` (Lucene BM25 variant) and ranks the
  documents that share at least one term with the query; ties go to the earlier document, as in
  Lucene.
* :class:`RankBM25Search` is a plain reference scorer (``rank-bm25`` with Lucene's idf) over the
  same tokens: the tests check that the top 10 are identical and the benchmark times both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from agentgym.errors import ConfigError

DEFAULT_K1 = 0.9
DEFAULT_B = 0.4
#: the original's SEARCH_RETURN_N
MAX_HITS = 50
#: Lucene's English stop-word set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET)
# fmt: off
LUCENE_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
))
# fmt: on
_TOKEN = re.compile(r"\w+(?:(?:['’.]|(?<=\d),(?=\d))\w+)*")
STEMMERS = ("porter", "none")


class Tokenizer:
    """Lower-case word tokens, possessives and stop words dropped, Porter-stemmed.

    >>> Tokenizer("none")("The Women's 3.4oz Sofa-Tables")
    ['women', '3.4oz', 'sofa', 'tables']
    """

    def __init__(self, stemmer: str = "porter"):
        if stemmer not in STEMMERS:
            raise ConfigError(f"stemmer={stemmer!r}; expected one of {list(STEMMERS)}")
        self.stemmer = stemmer
        self._stem = _porter_stemmer() if stemmer == "porter" else None

    def __call__(self, text: str) -> list[str]:
        out = []
        for tok in _TOKEN.findall(text.lower()):
            if tok.endswith(("'s", "’s")):
                tok = tok[:-2]
            if tok and tok not in LUCENE_STOPWORDS:
                out.append(tok)
        return self._stem(out) if self._stem is not None else out


@lru_cache(maxsize=1)
def _porter_stemmer() -> Any:
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "WebShop search stems words like the original Lucene index and needs PyStemmer: "
            "pip install 'agentgym[webshop]' (or PyStemmer), or pass stemmer='none'"
        ) from exc
    return Stemmer.Stemmer("porter").stemWords


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` best positive scores, best first, ties to the lower index.

    >>> top_k(np.array([0.0, 2.0, 1.0, 2.0]), 2)
    [1, 3]
    """
    hits = np.flatnonzero(scores > 0)
    sc = scores[hits]
    if len(hits) > k:
        kth = np.partition(sc, len(sc) - k)[len(sc) - k]
        above, equal = hits[sc > kth], hits[sc == kth]
        hits = np.concatenate([above, equal[: k - len(above)]])
        sc = scores[hits]
    return hits[np.lexsort((hits, -sc))].tolist()


class SearchEngine:
    """BM25 (``bm25s``, Lucene variant) over a fixed list of documents."""

    def __init__(
        self,
        texts: Sequence[str] | None = None,
        *,
        tokens: Sequence[list[str]] | None = None,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        stemmer: str = "porter",
    ):
        import bm25s

        if (texts is None) == (tokens is None):
            raise ConfigError("SearchEngine needs exactly one of texts= or tokens=")
        self.tokenizer = Tokenizer(stemmer)
        corpus = list(tokens) if tokens is not None else [self.tokenizer(t) for t in texts or ()]
        if not corpus:
            raise ConfigError("SearchEngine needs at least one document")
        self.num_docs = len(corpus)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene", dtype="float64")
        self.retriever.index(corpus, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no query term is indexed)."""
        ids = self.retriever.get_tokens_ids(self.tokenizer(query))
        if not ids:
            return np.zeros(self.num_docs)
        return np.asarray(self.retriever.get_scores_from_ids(ids), dtype=np.float64)

    def search(self, query: str, k: int = MAX_HITS) -> list[int]:
        """Document indices of the top ``k`` hits (documents sharing a term with the query)."""
        return top_k(self.scores(query), k)


class RankBM25Search:
    """Reference scorer: ``rank-bm25`` with Lucene's idf, over the same tokens.

    Lucene's term weight is ``tf / (tf + k1 (1 - b + b dl/avgdl))`` times
    ``log(1 + (N - df + 0.5) / (df + 0.5))``; rank-bm25 multiplies the first factor by the
    constant ``k1 + 1``, which leaves the ranking unchanged.
    """

    def __init__(
        self,
        tokens: Sequence[list[str]],
        *,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        stemmer: str = "porter",
    ):
        from rank_bm25 import BM25Okapi

        class LuceneIdfBM25(BM25Okapi):
            def _calc_idf(self, nd: dict[str, int]) -> None:
                n = self.corpus_size
                self.idf = {w: math.log(1 + (n - df + 0.5) / (df + 0.5)) for w, df in nd.items()}

        self.tokenizer = Tokenizer(stemmer)
        self.k1 = k1
        self.bm25 = LuceneIdfBM25(list(tokens), k1=k1, b=b)

    def scores(self, query: str) -> np.ndarray:
        """Scores on bm25s's scale (divided by rank-bm25's constant ``k1 + 1``)."""
        return np.asarray(self.bm25.get_scores(self.tokenizer(query))) / (self.k1 + 1)

    def search(self, query: str, k: int = MAX_HITS) -> list[int]:
        return top_k(self.scores(query), k)
