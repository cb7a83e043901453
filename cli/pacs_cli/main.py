"""``pacs``: the user's command line. ``--json`` prints one JSON document on stdout and
nothing else there; failures exit non-zero."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from pacs_cli.errors import CliError

# Each module registers its subcommands with ``register(subparsers)``; every command's
# handler returns (JSON-able result, human text) or raises CliError, so every command takes
# ``--json`` (added here, not by each module).
COMMAND_MODULES = ("pacs_cli.cmd_account", "pacs_cli.cmd_upload")
OPTIONAL_MODULES = ("pacs_cli.cmd_studies", "pacs_cli.cmd_links", "pacs_cli.cmd_privacy",
                    "pacs_cli.cmd_download", "pacs_cli.cmd_keys")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacs", description="Radiology PACS command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES + OPTIONAL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if name in OPTIONAL_MODULES and err.name == name:
                continue
            raise
        module.register(sub)
    _add_json_option(sub)
    return parser


def _add_json_option(subparsers: argparse._SubParsersAction) -> None:
    """Give every command (each leaf of the subcommand tree) the ``--json`` option."""
    for command in set(subparsers.choices.values()):
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for inner in nested:
            _add_json_option(inner)
        if not nested and "--json" not in command._option_string_actions:
            command.add_argument("--json", action="store_true",
                                 help="print one JSON document on stdout and nothing else")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result, human = args.run(args)
    except CliError as err:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": err.code, "message": str(err)}))
        else:
            print(f"pacs: {err}", file=sys.stderr)
        return err.exit_code
    if getattr(args, "json", False):
        print(json.dumps(result, default=str))
    else:
        print(human)
    return 1 if isinstance(result, dict) and result.get("ok") is False else 0


if __name__ == "__main__":
    sys.exit(main())
