"""The WebShop purchase reward, part by part (type, attributes, options, price).

Follows the original ``get_reward``:

    r = r_type * (n_attr + n_option + [price <= price_upper]) / (|attributes| + |goal options| + 1)

* **type**: ``r_type`` is 1, 0.5 when neither the query, two product-category levels nor more than
  0.2 of the goal title's nouns match, 0.1 when that noun overlap is below 0.1 and 0 when it is 0.
* **attributes**: a goal attribute counts when ``token_set_ratio > 85`` against a product
  attribute, or when it is a substring of the lower-cased title, bullet points or description.
* **options**: each goal option counts (at most once) when some selected option value scores
  ``token_set_ratio > 85`` against it, both sides passed through :func:`normalize_color`.
  (The original passes a synthetic goal's options as ``(name, value)`` tuples that thefuzz turns
  into the text ``"name value"``; we compare against the values, which ranks the same options.)
* **price**: 1 when the price paid is at most the goal's cap.

Stand-ins: rapidfuzz's ``token_set_ratio`` with its default processor replaces thefuzz's (same
0–100 scale, rounded to an integer as thefuzz does); :func:`title_nouns` replaces spaCy's
noun/proper-noun tagging (the spaCy model is not installable here) and its version is recorded
in every reward breakdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process

if TYPE_CHECKING:
    from envs.webshop.data import Product
    from envs.webshop.goals import Goal

FUZZY_THRESHOLD = 85
NOUN_EXTRACTOR_VERSION = "webshop-nouns-v1"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Colour words in alphabetical order: the first one found names the colour (the original's rule,
# so "wine red" and "dark red" both normalise to "red").
COLOR_WORDS: tuple[str, ...] = tuple(
    sorted(
        _words(
            """
        amber apricot aqua aubergine azure beige black blue blush bronze brown burgundy camel camo
        caramel champagne charcoal cherry chestnut chocolate cobalt coffee cognac copper coral cream
        crimson cyan denim ebony emerald espresso fuchsia gold graphite gray green grey gunmetal
        hazel honey indigo ivory jade khaki lavender lemon leopard lilac lime magenta mahogany maroon
        mauve mint mocha mulberry multicolor mustard navy nude oatmeal olive onyx orange orchid peach
        pearl pewter pink platinum plum purple rainbow raspberry red rose ruby rust salmon sand
        sapphire scarlet sienna silver slate smoke stone tan taupe teal turquoise violet
        walnut wheat white wine yellow
        """
        )
    )
)

# Words the noun stand-in drops: function words, then size, unit and common adjective words.
_STOPWORDS = _words(
    """
    a about above after again against all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each else few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not of off on once only or other our ours out over own same she should so some such than
    that the their theirs them then there these they this those through to too under until up upon
    very was we were what when where which while who whom why will with within without would you
    your yours per via plus incl
    """
)
_SIZE_WORDS = _words(
    """
    small medium large xl xxl xxxl xs xxs big mini petite regular tall wide narrow king queen twin
    full size sizes extra jumbo
    """
)
_UNIT_WORDS = _words(
    """
    oz ounce ounces fl inch inches in cm mm ml lb lbs pound pounds kg gram grams pack packs pcs pc
    piece pieces count ct feet ft foot yard yards meter meters liter liters litre gallon gallons qt
    quart quarts watt watts volt volts mah gb tb mb hz ghz mhz mg dozen pair pairs
    """
)
_ADJECTIVES = _words(
    """
    new natural organic premium portable soft durable waterproof lightweight adjustable
    professional easy high low best great perfect cute casual elegant sexy comfortable classic
    modern vintage original pure fresh free compatible wireless electric digital stainless heavy
    long short slim multi super ultra light dark deep bright clear hot cold warm cool real
    universal simple smart fashionable stylish luxury beautiful pretty handmade decorative
    rustic unique practical reusable safe healthy sweet delicious non different various
    """
)
_DROP = _STOPWORDS | _SIZE_WORDS | _UNIT_WORDS | _ADJECTIVES | frozenset(COLOR_WORDS)
_LETTERS = re.compile(r"[^\W\d_]+")


def normalize_color(value: str) -> str:
    """The first colour word inside ``value``, else ``value`` itself.

    >>> normalize_color("wine red"), normalize_color("x-large")
    ('red', 'x-large')
    """
    for color in COLOR_WORDS:
        if color in value:
            return color
    return value


def title_nouns(text: str) -> list[str]:
    """Stand-in for spaCy's NOUN/PROPN tokens: lower-cased alphabetic words of 2+ letters, minus
    function, colour, size, unit and common adjective words (version ``NOUN_EXTRACTOR_VERSION``).

    >>> title_nouns("Women's Black Leather Sandal, 2 Pack")
    ['women', 'leather', 'sandal']
    """
    return [w for w in _LETTERS.findall(text.lower()) if len(w) > 1 and w not in _DROP]


def fuzzy_score(a: str, b: str) -> int:
    """thefuzz-style ``token_set_ratio``: processed (lower-case, alphanumerics), rounded to an int."""
    return round(fuzz.token_set_ratio(a, b, processor=default_process))


# ---- the four parts ------------------------------------------------------------------------
def type_reward(purchased: Product, goal: Goal) -> dict[str, Any]:
    """``r_type`` with its evidence: query match, category match (>= 2 levels), title noun overlap."""
    query_match = purchased.query == goal.query
    bought_levels = {x.strip() for x in purchased.product_category.split("›")}
    goal_levels = {x.strip() for x in goal.product_category.split("›")}
    category_match = len(bought_levels & goal_levels) >= 2
    bought_nouns = set(title_nouns(purchased.name))
    goal_nouns = title_nouns(goal.name)
    if goal_nouns:
        title_score = len(bought_nouns & set(goal_nouns)) / len(goal_nouns)
    else:
        title_score = 0.2
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return {
        "r_type": r_type,
        "query_match": query_match,
        "category_match": category_match,
        "title_score": title_score,
    }


def attribute_matches(purchased: Product, goal_attributes: Sequence[str]) -> int:
    """How many goal attributes the product has (fuzzy attribute match, else text substring)."""
    title = purchased.title.lower()
    bullets = " ".join(purchased.bullet_points).lower()
    description = purchased.description.lower()
    n = 0
    for g_attr in goal_attributes:
        fuzzy = any(fuzzy_score(p_attr, g_attr) > FUZZY_THRESHOLD for p_attr in purchased.attributes)
        n += fuzzy or g_attr in title or g_attr in bullets or g_attr in description
    return n


def option_matches(selected: Iterable[str], goal_options: Iterable[str]) -> int:
    """How many goal options some selected option value matches (colour-normalised, fuzzy)."""
    chosen = [normalize_color(o) for o in selected]
    n = 0
    for g_option in goal_options:
        g = normalize_color(g_option)
        if any(fuzzy_score(p, g) > FUZZY_THRESHOLD for p in chosen):
            n += 1
    return n


def price_ok(price: float, price_upper: float) -> bool:
    return price <= price_upper


@dataclass(frozen=True)
class RewardBreakdown:
    """The total reward and its parts (the original's verbose reward info, plus counts)."""

    reward: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    r_att: float
    w_att: float
    num_attr_matches: int
    r_option: float | None
    w_option: float | None
    num_option_matches: int
    r_price: bool
    w_price: float
    noun_extractor: str = NOUN_EXTRACTOR_VERSION

    def as_info(self) -> dict[str, Any]:
        return asdict(self)


def goal_option_values(goal_options: Mapping[str, str] | Sequence[str]) -> list[str]:
    """Synthetic goals hold ``{name: value}``, human goals a list of values."""
    if isinstance(goal_options, Mapping):
        return [str(v) for v in goal_options.values()]
    return [str(v) for v in goal_options]


def compute_reward(
    purchased: Product, goal: Goal, *, price: float, options: Mapping[str, str]
) -> RewardBreakdown:
    """Score buying ``purchased`` at ``price`` with the selected ``options`` against ``goal``."""
    t = type_reward(purchased, goal)
    n_attr = attribute_matches(purchased, goal.attributes)
    wanted = goal_option_values(goal.goal_options)
    n_opt = option_matches(list(options.values()), wanted)
    r_price = price_ok(price, goal.price_upper)
    denom = len(goal.attributes) + len(wanted) + 1
    total = (n_attr + n_opt + int(r_price)) / denom * t["r_type"]
    return RewardBreakdown(
        reward=total,
        r_type=t["r_type"],
        query_match=t["query_match"],
        category_match=t["category_match"],
        title_score=t["title_score"],
        r_att=n_attr / len(goal.attributes) if goal.attributes else 0.0,
        w_att=len(goal.attributes) / denom,
        num_attr_matches=n_attr,
        r_option=n_opt / len(wanted) if wanted else None,
        w_option=len(wanted) / denom if wanted else None,
        num_option_matches=n_opt,
        r_price=r_price,
        w_price=1 / denom,
    )
