"""The TextWorld game families and their difficulty levels (pure data; no TextWorld import).

Four families are TextWorld's own challenges (``textworld.challenges.CHALLENGES``); ``keydoor`` is
agentgym's, built with ``textworld.GameMaker`` (:mod:`agentgym.envs.textworld.keydoor`). A
difficulty is a named level (``easy``/``medium``/``hard``) mapped to documented generator settings,
or, for the families whose generator has numbered levels (Coin Collector 1-300, Treasure Hunter
1-30), an int level passed straight through.

============  ======================================  ======================================  =========================
family        easy                                    medium                                  hard
============  ======================================  ======================================  =========================
cooking       1 ingredient to take, 1 room (~5 steps)  2 to take, 6 rooms, open + cut          3 to take, 9 rooms, open + cook + cut
simple        dense rewards, detailed goal            balanced rewards, detailed goal         sparse rewards, brief goal
coin          level 3 (chain of 3 rooms)              level 10 (10 rooms)                     level 110 (20 rooms, dead ends)
treasure      level 5 (5 rooms, quest length 3)       level 15 (10 rooms, doors, containers)  level 25 (20 rooms, locked doors)
keydoor       corridor 10, key 1 room off one of the  corridor 12, key off one of the first   corridor 12, key 2 rooms off one of
              first 2 rooms, 3 dead ends (15 steps)   3, 5 dead ends (17 steps)               the first 3, 8 dead ends (19 steps)
============  ======================================  ======================================  =========================

keydoor also has ``short``: a chain of 10 rooms (no dead ends), the key in sight in one of the first
two, plain names (key, door, coin; 13 steps). Its pick-up decides the episode and the locked door
that says so is 8-9 turns later; the ablation's ``keydoor-short`` setting uses it.

Turn budgets (the registered ``max_episode_steps``): 50, but 25 for keydoor, where it is part of
the task: every level's walkthrough fits it, and no policy that passes the key by can win within it
(:func:`agentgym.envs.textworld.keydoor.min_turns_without_key` is 27 / 31 / 35 / 39).

Splits: cooking passes TextWorld's own recipe ``split`` (train/valid/test foods and preparations);
simple draws its ``test`` split from TextWorld's test food distribution (``test=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: per-split seed bases, far apart so that no split can ever reach another split's seeds
SPLIT_SEED_BASE: Mapping[str, int] = {"train": 10_000_000, "valid": 20_000_000, "test": 30_000_000}
MAX_GAMES_PER_SPLIT = 1_000_000
DEFAULT_N_GAMES: Mapping[str, int] = {"train": 100, "valid": 20, "test": 20}

_COOKING_OFF = {"open": False, "cook": False, "cut": False, "drop": False, "recipe_seed": 0}


@dataclass(frozen=True)
class Family:
    """One TextWorld challenge, its named difficulty levels and its numbered-level range."""

    name: str
    challenge: str
    env_id: str
    alias: str
    description: str
    levels: Mapping[str, Mapping[str, Any]]
    int_levels: tuple[int, int] | None = None  # inclusive range of numbered levels, if any
    named_int_levels: Mapping[str, int] = field(default_factory=dict)
    #: the registered turn budget (Gymnasium's ``TimeLimit``)
    max_episode_steps: int = 50

    def base_settings(self, difficulty: str | int) -> dict[str, Any]:
        """Generator settings of a difficulty (before the per-split adjustments)."""
        if isinstance(difficulty, bool) or not isinstance(difficulty, str | int):
            raise ConfigError(f"difficulty must be a level name or an int, got {difficulty!r}")
        if isinstance(difficulty, str):
            if difficulty in self.levels:
                return dict(self.levels[difficulty])
            if difficulty in self.named_int_levels:
                return {"level": self.named_int_levels[difficulty]}
            names = sorted({*self.levels, *self.named_int_levels})
            raise ConfigError(
                f"unknown {self.name} difficulty {difficulty!r}; expected one of {names}"
                + (f" or an int level in {list(self.int_levels)}" if self.int_levels else "")
            )
        if self.int_levels is None:
            raise ConfigError(
                f"{self.name} has no numbered levels; pass difficulty as one of {sorted(self.levels)}"
            )
        lo, hi = self.int_levels
        if not lo <= difficulty <= hi:
            raise ConfigError(f"{self.name} level must be in [{lo}, {hi}], got {difficulty}")
        if self.name == "coin" and _coin_rooms(difficulty) > 100:
            raise ConfigError(
                f"coin level {difficulty} needs {_coin_rooms(difficulty)} rooms; TextWorld 1.7 "
                "supports at most 100 (levels 1-100, 101-150, 201-225)"
            )
        return {"level": difficulty}

    def split_settings(self, base: Mapping[str, Any], split: str) -> dict[str, Any]:
        """Settings for one split: the generator's own split option where it has one."""
        settings = dict(base)
        if self.name == "cooking":
            settings["split"] = split
        elif self.name == "simple":
            settings["test"] = split == "test"
        return settings

    def level_name(self, difficulty: str | int) -> str:
        """The difficulty as it appears in task ids (``easy`` or ``level15``)."""
        return difficulty if isinstance(difficulty, str) else f"level{difficulty}"


def _coin_rooms(level: int) -> int:
    return ((level - 1) // 100 + 1) * ((level - 1) % 100 + 1)


FAMILIES: Mapping[str, Family] = {
    f.name: f
    for f in (
        Family(
            name="cooking",
            challenge="tw-cooking",
            env_id="agentgym/TextWorld-Cooking-v0",
            alias="textworld-cooking",
            description="TextWorld cooking games (First TextWorld Problems): read the recipe, fetch, "
            "prepare and eat the meal",
            levels={
                "easy": {"recipe": 1, "take": 1, "go": 1, **_COOKING_OFF},
                "medium": {**_COOKING_OFF, "recipe": 2, "take": 2, "go": 6, "open": True, "cut": True},
                "hard": {
                    **_COOKING_OFF,
                    "recipe": 3,
                    "take": 3,
                    "go": 9,
                    "open": True,
                    "cook": True,
                    "cut": True,
                },
            },
        ),
        Family(
            name="simple",
            challenge="tw-simple",
            env_id="agentgym/TextWorld-Simple-v0",
            alias="textworld-simple",
            description="TextWorld 'simple' games: fetch a food item in a small house and put it on the stove",
            levels={
                "easy": {"rewards": "dense", "goal": "detailed"},
                "medium": {"rewards": "balanced", "goal": "detailed"},
                "hard": {"rewards": "sparse", "goal": "brief"},
            },
        ),
        Family(
            name="coin",
            challenge="tw-coin_collector",
            env_id="agentgym/TextWorld-CoinCollector-v0",
            alias="textworld-coin",
            description="TextWorld Coin Collector: walk a chain of rooms and take the coin",
            levels={},
            int_levels=(1, 300),
            named_int_levels={"easy": 3, "medium": 10, "hard": 110},
        ),
        Family(
            name="treasure",
            challenge="tw-treasure_hunter",
            env_id="agentgym/TextWorld-TreasureHunter-v0",
            alias="textworld-treasure",
            description="TextWorld Treasure Hunter: find the named object, avoid the wrong one",
            levels={},
            int_levels=(1, 30),
            named_int_levels={"easy": 5, "medium": 15, "hard": 25},
        ),
        Family(
            name="keydoor",
            # agentgym's own generator (agentgym.envs.textworld.keydoor); the suffix versions the cache
            challenge="agentgym-keydoor-v1",
            env_id="agentgym/TextWorld-KeyDoor-v0",
            alias="textworld-keydoor",
            description="TextWorld key-door games: take the goal object behind a locked door at the end of "
            "a corridor; its key lies off the corridor near the start and nothing says so",
            levels={
                "short": {
                    "corridor": 10,
                    "key_within": 2,
                    "key_depth": 0,
                    "dead_ends": 0,
                    "plain_names": True,
                },
                "easy": {"corridor": 10, "key_within": 2, "key_depth": 1, "dead_ends": 3},
                "medium": {"corridor": 12, "key_within": 3, "key_depth": 1, "dead_ends": 5},
                "hard": {"corridor": 12, "key_within": 3, "key_depth": 2, "dead_ends": 8},
            },
            max_episode_steps=25,
        ),
    )
}


def validate_n_games(n_games: Mapping[str, int] | None) -> dict[str, int]:
    """Split sizes with defaults filled in; unknown splits and bad sizes are errors."""
    sizes = dict(DEFAULT_N_GAMES)
    if n_games is None:
        return sizes
    if not isinstance(n_games, Mapping):
        raise ConfigError(f"n_games must be a dict like {dict(DEFAULT_N_GAMES)}, got {n_games!r}")
    unknown = set(n_games) - set(SPLITS)
    if unknown:
        raise ConfigError(
            f"n_games has unknown split(s) {sorted(unknown)}; expected keys among {list(SPLITS)}"
        )
    for split, n in n_games.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_GAMES_PER_SPLIT:
            raise ConfigError(f"n_games[{split!r}] must be an int in [0, {MAX_GAMES_PER_SPLIT}], got {n!r}")
        sizes[split] = n
    return sizes
