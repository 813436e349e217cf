"""Every ``agentgym ...`` command in the README's code blocks parses with the real CLI parser.

A documented command that does not exist (a subcommand, an option, a benchmark or a data
downloader) fails here, so the README and the CLI cannot drift apart.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from agentgym.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """``agentgym`` command lines from the README's fenced code blocks (after ``&&`` too)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        # join backslash continuations, then split command lists
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line):
                words = shlex.split(part, comments=True)
                if words and words[0] == "agentgym":
                    commands.append(shlex.join(words))
    return commands


COMMANDS = readme_commands()


def test_the_readme_documents_commands():
    assert len(COMMANDS) >= 10, COMMANDS
    assert "agentgym train" in COMMANDS  # the main job of the two-command quick start


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command: str):
    argv = shlex.split(command)[1:]
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
    except SystemExit as exc:
        pytest.fail(f"README command does not parse: {command!r} (argparse exit {exc.code})")
    if rest:
        assert getattr(args, "pass_rest", False), f"{command!r}: unrecognized arguments {rest}"
    if args.command == "bench":
        assert importlib.util.find_spec(f"bench.{args.name}"), (
            f"{command!r}: no benchmark bench/{args.name}.py"
        )
    if args.command == "data":
        from importlib.metadata import entry_points

        names = {ep.name for ep in entry_points(group="agentgym.data")}
        assert args.name in names, f"{command!r}: no downloader {args.name!r} (have {sorted(names)})"


def test_a_command_that_does_not_exist_would_fail():
    """The check above is not vacuous: a made-up subcommand and option do not parse."""
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_known_args(["frobnicate"])
    args, rest = parser.parse_known_args(["eval", "countdown", "--no-such-option"])
    assert rest == ["--no-such-option"] and not getattr(args, "pass_rest", False)


def test_swe_generate_help_parses(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["swe", "generate", "--help"])
    assert exc.value.code == 0 and "usage" in capsys.readouterr().out
