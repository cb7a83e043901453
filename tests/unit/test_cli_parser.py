"""The ``pacs`` command tree: every command takes ``--json`` (one JSON document on stdout),
added once by the parser rather than by each command module."""

from __future__ import annotations

import argparse

from pacs_cli.main import build_parser


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not nested:
        yield path, parser
    for action in nested:
        for name, command in action.choices.items():
            yield from _leaves(command, path + (name,))


def test_every_command_accepts_json():
    # Arrange
    leaves = dict(_leaves(build_parser()))

    # Act
    missing = [" ".join(path) for path, parser in leaves.items()
               if "--json" not in parser._option_string_actions]

    # Assert
    assert {"status", "upload", "studies", "keys create", "keys list", "share",
            "privacy export"} <= {" ".join(p) for p in leaves}
    assert missing == []


def test_json_is_parsed_for_a_nested_command():
    args = build_parser().parse_args(["keys", "revoke", "k1", "--json"])

    assert args.json is True and args.key_id == "k1"
