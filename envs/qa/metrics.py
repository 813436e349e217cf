"""Answer scoring with the official HotpotQA normalisation: exact match and token F1.

Follows ``hotpot_evaluate_v1.py`` (hotpotqa/hotpot, functions ``normalize_answer``,
``f1_score``, ``exact_match_score``), itself SQuAD v1.1's: lower-case, drop punctuation, drop the
articles a/an/the, collapse white space. F1 is 0 when either side normalises to ``yes``, ``no`` or
``noanswer`` and the two differ (a yes/no question is answered right or wrong, never half). With
several gold answers (MuSiQue's aliases, Search-R1's ``golden_answers``) the best score counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation and articles, collapse white space.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    >>> normalize_answer("An apple a day")
    'apple day'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 of the normalised strings, HotpotQA's yes/no/noanswer rule included.

    >>> f1_score("the Chief of Protocol", "Chief of Protocol")
    1.0
    >>> round(f1_score("Chief", "Chief of Protocol"), 4)
    0.5
    >>> f1_score("yes", "no")
    0.0
    """
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal.

    >>> exact_match("The Beatles", "beatles")
    1.0
    """
    return float(normalize_answer(prediction) == normalize_answer(gold))


def best_scores(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """``(em, f1)``: the best of each over the gold answers (0, 0 when there are none)."""
    if not golds:
        return 0.0, 0.0
    return max(exact_match(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)
