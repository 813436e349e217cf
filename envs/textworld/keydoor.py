"""Key-door games: an early, silent pick-up that decides the episode many turns later.

A game generator in TextWorld's challenge form (``make(settings, options) -> textworld.Game``),
built with ``textworld.GameMaker`` and TextWorld's default knowledge base (rooms, doors, keys,
``match``/``locked`` logic), so the engine, its planner and its walkthrough work as for TextWorld's
own challenges.

Map: a corridor of ``corridor`` rooms; the player starts at one end. The key lies ``key_depth``
rooms down a side branch off one of the first ``key_within`` corridor rooms (``key_depth`` 0: in
that corridor room itself, in sight; with ``key_within`` 1, in the start room); ``dead_ends`` more
side rooms (empty) hang off the corridor so that the key's branch is not the only one. The last
corridor room is behind a locked door (matched to the key) and holds the goal object. Walkthrough:
walk to the branch, fetch the key, walk back and on to the door, unlock, open, enter, take the
goal: ``corridor + 2 * key_depth + 3`` commands.

Why credit must matter here: the objective names only the goal ("Find the X and take it"), not
the route; nothing rewards or mentions the key until the locked door, ``corridor - 2 - k`` rooms
further on (k = the branch's corridor room). A policy that walks past the key finds the door
locked and needs ``2 * (corridor - 2 - k + key_depth)`` extra moves to fetch it, more than the
family's turn budget leaves (see :data:`agentgym.envs.textworld.families.FAMILIES`), so the
episode is lost at the pick-up it skipped, not at the door. The only reward is the win (score 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

#: the settings every level sets (checked before any generation)
SETTING_KEYS = ("corridor", "key_within", "key_depth", "dead_ends")
#: optional settings: ``plain_names`` (bool, default False) names the key "key", the door "door" and
#: the goal "coin" instead of drawing them from TextWorld's grammar (keycard, gateway, lampshade...),
#: so that a small model's failures are about the route and the pick-up, not about copying names
OPTIONAL_KEYS = ("plain_names",)


def check_settings(settings: Mapping[str, Any]) -> dict[str, int]:
    """The four layout settings as ints, with a clear error for a missing, unknown or bad value."""
    unknown = set(settings) - set(SETTING_KEYS) - set(OPTIONAL_KEYS)
    missing = set(SETTING_KEYS) - set(settings)
    if unknown or missing:
        raise ValueError(
            f"keydoor settings must have exactly the keys {list(SETTING_KEYS)} (optional: "
            f"{list(OPTIONAL_KEYS)}); missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    plain = settings.get("plain_names", False)
    if not isinstance(plain, bool):
        raise ValueError(f"keydoor setting plain_names must be a bool, got {plain!r}")
    values = {k: settings[k] for k in SETTING_KEYS}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"keydoor setting {key} must be a non-negative int, got {value!r}")
    if values["corridor"] < 4:
        raise ValueError(
            f"keydoor corridor must have >= 4 rooms (start, key branch, door, goal), got {values}"
        )
    if not 1 <= values["key_within"] <= values["corridor"] - 2:
        raise ValueError(f"keydoor key_within must be in [1, corridor - 2], got {values}")
    # plain_names only when set: the other levels' settings (and so their game caches) stay as they were
    return {**values, "plain_names": plain} if plain else values


def walkthrough_length(settings: Mapping[str, Any]) -> int:
    """Commands in the walkthrough of every game with these settings."""
    s = check_settings(settings)
    return s["corridor"] + 2 * s["key_depth"] + 3


def min_turns_without_key(settings: Mapping[str, Any]) -> int:
    """Fewest turns to win for a policy that walks the walkthrough's route but skips ``take key``.

    The walkthrough's commands but the pick-up (``W - 1``) bring it to the locked door; from there
    it must walk back to the branch, down to the key and back (``2 * (corridor - 2 - k + depth)``),
    take the key (1) — with k the branch's corridor index, at most ``key_within - 1``.
    """
    s = check_settings(settings)
    back = s["corridor"] - 2 - (s["key_within"] - 1) + s["key_depth"]
    return walkthrough_length(s) - 1 + 2 * back + 1


def make(settings: Mapping[str, Any], options: Any = None) -> Any:
    """A key-door game (a ``textworld.Game`` with its walkthrough recorded) for ``options.seeds``."""
    import textworld
    from textworld.generator.game import Event, GameOptions, Quest
    from textworld.generator.graph_networks import reverse_direction

    s = check_settings(settings)
    options = options or GameOptions()
    options.grammar.allowed_variables_numbering = True  # up to ~30 rooms: never run out of names
    rng = options.rngs["map"]
    maker = textworld.GameMaker(options)

    def free_exits(room: Any) -> list[str]:
        return sorted(d for d, e in room.exits.items() if e.dest is None)

    def attach(src: Any, direction: str | None = None) -> tuple[Any, Any, str]:
        exit_ = direction or str(rng.choice(free_exits(src)))
        room = maker.new_room()
        path = maker.connect(src.exits[exit_], room.exits[reverse_direction(exit_)])
        return room, path, exit_

    corridor, moves = [maker.new_room()], []
    door_path = None
    for i in range(1, s["corridor"]):
        room, path, exit_ = attach(corridor[-1])
        corridor.append(room)
        moves.append(exit_)
        if i == s["corridor"] - 1:
            door_path = path
    maker.set_player(corridor[0])

    # the key's branch: off corridor room k, key_depth rooms long, the key in its last room (depth 0:
    # in corridor room k itself)
    k = int(rng.randint(0, s["key_within"]))
    branch, branch_moves = corridor[k], []
    for _ in range(s["key_depth"]):
        branch, _, exit_ = attach(branch)
        branch_moves.append(exit_)
    plain = s.get("plain_names", False)
    key = maker.new(type="k", name="key" if plain else None)
    branch.add(key)
    door = maker.new_door(door_path, name="door" if plain else None)
    door.add_property("locked")
    maker.add_fact("match", key, door)
    goal = maker.new(type="o", name="coin" if plain else None)
    corridor[-1].add(goal)

    # empty dead ends off the corridor (not off the goal room: the door is its only way in)
    hosts = [r for r in corridor[:-1] if free_exits(r)]
    for _ in range(s["dead_ends"]):
        hosts = [r for r in hosts if free_exits(r)]
        if not hosts:
            break
        attach(hosts[int(rng.randint(len(hosts)))])

    with warnings.catch_warnings():
        # the grammar runs short of room adjectives on the larger maps and says so; names stay unique
        warnings.simplefilter("ignore", textworld.GenerationWarning)
        game = maker.build()  # names the entities (grammar)
    names = {e: game.infos[e.id].name for e in (key, door, goal)}
    walkthrough = [f"go {m}" for m in moves[:k]]
    walkthrough += [f"go {m}" for m in branch_moves]
    walkthrough.append(f"take {names[key]}")
    walkthrough += [f"go {reverse_direction(m)}" for m in reversed(branch_moves)]
    walkthrough += [f"go {m}" for m in moves[k:-1]]
    walkthrough += [f"unlock {names[door]} with {names[key]}", f"open {names[door]}", f"go {moves[-1]}"]
    walkthrough.append(f"take {names[goal]}")
    won = Event(
        actions=_logic_actions(game, walkthrough), conditions={maker.new_fact("in", goal, maker.inventory)}
    )
    maker.quests = [Quest(win_events=[won])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", textworld.GenerationWarning)
        game = maker.build()  # same seed, same names; now with the quest and its walkthrough
    if game.metadata.get("walkthrough") != walkthrough:
        raise RuntimeError(
            f"keydoor: TextWorld's winning policy {game.metadata.get('walkthrough')} differs from the "
            f"generated walkthrough {walkthrough} (seeds {options.seeds})"
        )
    game.objective = f"Find the {names[goal]} and take it."  # the goal only, never the route
    game.metadata.update(
        {
            "desc": "agentgym key-door",
            "seeds": options.seeds,
            "settings": s,
            "key_branch": k,
            "key_command": f"take {names[key]}",
            "uuid": f"agentgym-keydoor-{'-'.join(str(s[x]) for x in SETTING_KEYS)}"
            f"{'-plain' if plain else ''}-{options.seeds['map']}",
        }
    )
    return game


def _logic_actions(game: Any, commands: list[str]) -> list[Any]:
    """The logic actions of ``commands`` played from the game's start state (no compile needed,
    unlike ``GameMaker.set_walkthrough``, which compiles and plays the game: ~2x the time)."""
    names = {k: info.name for k, info in game.infos.items()}
    state = game.world.state.copy()
    actions: list[Any] = []
    for command in commands:
        applicable = state.all_applicable_actions(game.kb.rules.values(), game.kb.types.constants_mapping)
        matches = [a for a in applicable if a.format_command(names) == command]
        if len(matches) != 1:
            raise RuntimeError(f"keydoor: {len(matches)} actions match {command!r} after {actions}")
        state.apply(matches[0])
        actions.append(matches[0])
    return actions
