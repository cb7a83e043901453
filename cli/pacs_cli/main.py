"""``pacs``: the user's command line. ``--json`` prints one JSON document on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from pacs_cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacs", description="Radiology PACS command line")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="each local cloud service and whether it answers")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=commands.status)
    for name in ("signup", "login"):
        p = sub.add_parser(name, help=f"{name} with email and password")
        p.add_argument("--email", required=True)
        p.add_argument("--password", required=True)
        p.add_argument("--json", action="store_true")
        p.set_defaults(run=getattr(commands, name))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result, human = args.run(args)
    except commands.CliError as err:
        if getattr(args, "json", False):
            print(json.dumps({"error": err.code, "message": str(err)}))
        else:
            print(f"pacs: {err}", file=sys.stderr)
        return err.exit_code
    if getattr(args, "json", False):
        print(json.dumps(result, default=str))
    else:
        print(human)
    return 0 if not (isinstance(result, dict) and result.get("ok") is False) else 1


if __name__ == "__main__":
    sys.exit(main())
