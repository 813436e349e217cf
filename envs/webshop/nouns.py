"""The nouns of a product name, for the type score: spaCy's, recorded or live, else a stand-in.

The original ``get_type_reward`` (princeton-nlp/WebShop@64fa2a5, ``web_agent_site/engine/goal.py``)
keeps the lower-cased tokens of a product's ``name`` that spaCy ``en_core_web_sm`` tags NOUN or
PROPN (duplicates kept: the goal's count is the denominator of ``title_score``). Sources, in order:

1. **Recorded**: ``title_nouns.json`` in the data folder holds spaCy's exact output for the shipped
   products' names (``{"model", "spacy", "rule", "products": {asin: {"name", "nouns"}}}``).
2. **spaCy**, when it is importable and the model is installed (other catalogues).
3. **Stand-in** (:func:`stand_in_nouns`, version ``webshop-nouns-v1``), only when neither holds a
   name: a word filter that differs from spaCy's tagging on about 10 % of ``r_type``. Using it
   warns once, and every reward breakdown names the source it used (``noun_extractor``).
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError

RECORDED_FILE = "title_nouns.json"
DEFAULT_SPACY_MODEL = "en_core_web_sm"
STAND_IN_VERSION = "webshop-nouns-v1"
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")  # the original's filter ("PNOUN" is no spaCy tag; kept as is)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ---- the stand-in (last resort) -----------------------------------------------------------------
# Words it drops: function words, colours, sizes, units and common adjectives (fixed for v1).
_DROP = _words(
    """
    a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each else few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not of off on once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too under until up upon
    very was we were what when where which while who whom why will with within without would you
    your yours per via plus incl
    amber apricot aqua aubergine azure beige black blue blush bronze brown burgundy camel camo
    caramel champagne charcoal cherry chestnut chocolate cobalt coffee cognac copper coral cream
    crimson cyan denim ebony emerald espresso fuchsia gold graphite gray green grey gunmetal
    hazel honey indigo ivory jade khaki lavender lemon leopard lilac lime magenta mahogany maroon
    mauve mint mocha mulberry multicolor mustard navy nude oatmeal olive onyx orange orchid peach
    pearl pewter pink platinum plum purple rainbow raspberry red rose ruby rust salmon sand
    sapphire scarlet sienna silver slate smoke stone tan taupe teal turquoise violet
    walnut wheat white wine yellow
    small medium large xl xxl xxxl xs xxs big mini petite regular tall wide narrow king queen twin
    full size sizes extra jumbo
    oz ounce ounces fl inch inches in cm mm ml lb lbs pound pounds kg gram grams pack packs pcs pc
    piece pieces count ct feet ft foot yard yards meter meters liter liters litre gallon gallons qt
    quart quarts watt watts volt volts mah gb tb mb hz ghz mhz mg dozen pair pairs
    new natural organic premium portable soft durable waterproof lightweight adjustable
    professional easy high low best great perfect cute casual elegant sexy comfortable classic
    modern vintage original pure fresh free compatible wireless electric digital stainless heavy
    long short slim multi super ultra light dark deep bright clear hot cold warm cool real
    universal simple smart fashionable stylish luxury beautiful pretty handmade decorative
    rustic unique practical reusable safe healthy sweet delicious non different various
    """
)
_LETTERS = re.compile(r"[^\W\d_]+")


def stand_in_nouns(text: str) -> list[str]:
    """Last-resort stand-in for spaCy's NOUN/PROPN tokens: lower-cased alphabetic words of 2+
    letters, minus function, colour, size, unit and common adjective words.

    >>> stand_in_nouns("Women's Black Leather Sandal, 2 Pack")
    ['women', 'leather', 'sandal']
    """
    return [w for w in _LETTERS.findall(text.lower()) if len(w) > 1 and w not in _DROP]


# ---- recorded nouns -------------------------------------------------------------------------------
def load_recorded(path: Path) -> tuple[dict[str, list[str]], str]:
    """``(product name -> nouns, label)`` from a ``title_nouns.json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        products = data["products"]
        by_name = {str(p["name"]): [str(w) for w in p["nouns"]] for p in products.values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: expected {{'model', 'spacy', 'products': {{asin: {{'name', 'nouns'}}}}}} "
            f"(spaCy nouns of each product name), could not read it ({exc})"
        ) from exc
    return by_name, f"recorded spaCy ({data.get('model', 'unknown model')}, {path.name})"


class NounTagger:
    """Product name -> (nouns, source label), from the recorded file, spaCy, or the stand-in."""

    def __init__(
        self,
        recorded: Mapping[str, list[str]] | None = None,
        recorded_label: str = "recorded",
        *,
        spacy_model: str | None = DEFAULT_SPACY_MODEL,
        loader: Callable[[str], tuple[Any, str]] | None = None,
    ):
        """``spacy_model=None`` asks for the stand-in (no spaCy, no warning); ``loader(model)``
        returns ``(nlp, label)`` (default: ``spacy.load``)."""
        self.recorded = dict(recorded or {})
        self.recorded_label = recorded_label
        self.spacy_model = spacy_model
        self._loader = loader or _load_spacy
        self._nlp: Any = None
        self._nlp_tried = False
        self._nlp_label = ""
        self._cache: dict[str, tuple[list[str], str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_folder(cls, root: Path, *, spacy_model: str | None = DEFAULT_SPACY_MODEL) -> NounTagger:
        """The tagger for a data folder: its ``title_nouns.json`` when it has one."""
        path = root / RECORDED_FILE
        if path.is_file():
            recorded, label = load_recorded(path)
            return cls(recorded, label, spacy_model=spacy_model)
        return cls(spacy_model=spacy_model)

    def __call__(self, name: str) -> tuple[list[str], str]:
        if name in self.recorded:
            return self.recorded[name], self.recorded_label
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._tag(name)
            return self._cache[name]

    def _tag(self, name: str) -> tuple[list[str], str]:
        nlp = self._spacy()
        if nlp is not None:
            return [t.text.lower() for t in nlp(name) if t.pos_ in NOUN_TAGS], self._nlp_label
        return stand_in_nouns(name), f"stand-in {STAND_IN_VERSION}"

    def _spacy(self) -> Any:
        if self._nlp_tried:
            return self._nlp
        self._nlp_tried = True
        if self.spacy_model is None:  # the stand-in was asked for: no warning
            return None
        try:
            self._nlp, self._nlp_label = self._loader(self.spacy_model)
            return self._nlp
        except (ImportError, OSError) as exc:  # spaCy missing, or its model not installed
            reason = f"spaCy model {self.spacy_model!r} unavailable ({exc})"
        warnings.warn(
            f"WebShop type score: {reason}; product names not in {RECORDED_FILE} get their nouns from "
            f"the stand-in {STAND_IN_VERSION}, which differs from the original's spaCy tagging on about "
            f"10% of r_type (install spaCy and {DEFAULT_SPACY_MODEL} for the original's nouns)",
            stacklevel=4,
        )
        return None


def _load_spacy(model: str) -> tuple[Any, str]:
    import spacy

    nlp = spacy.load(model)
    return nlp, f"spaCy {model} {nlp.meta.get('version', '')}".strip()
