"""``python -m localcloud up|down|dev|status``: the local cloud's command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from localcloud import launcher, procs, state


def report(result: dict) -> None:
    print(f"local cloud ready in {result['started_seconds']:.1f} s, "
          f"{result['rss_bytes'] / 2**20:.0f} MiB resident across {len(result['pids'])} processes")
    for name, url in result["function_urls"].items():
        print(f"  {name:24s} {url}")
    for key in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST",
                "FIREBASE_AUTH_EMULATOR_HOST"):
        print(f"  {key:28s} {result['env'][key]}")
    print(f"  logs: {result['logs']}")
    if result.get("web_url"):
        print(f"  web app: {result['web_url']}  (open this in a browser)")


def dev() -> int:
    """Foreground: up, the main job, then wait for Ctrl-C and stop everything."""
    result = launcher.up()
    report(result)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        from localcloud import mainjob

        mainjob.run(result)
    except ImportError:
        pass
    print("local cloud running; Ctrl-C stops it")
    while not stopping:
        dead = [n for n, pid in result["pids"].items() if not procs.group_alive(pid)]
        if dead:
            print(f"stopped: {', '.join(dead)} exited (see {result['logs']})", file=sys.stderr)
            break
        time.sleep(0.5)
    names = launcher.down()
    print(f"stopped {len(names)} processes")
    return 0 if stopping else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud")
    parser.add_argument("command", choices=["up", "down", "dev", "status", "mainjob"])
    args = parser.parse_args()
    if args.command == "up":
        report(launcher.up())
    elif args.command == "down":
        names = launcher.down()
        print(f"stopped {len(names)} processes" if names else "local cloud was not running")
    elif args.command == "dev":
        return dev()
    elif args.command == "mainjob":
        # The main job against a cloud started by `make up` (CI runs it this way).
        current = state.read()
        if not current:
            print("the local cloud is not running (make up)", file=sys.stderr)
            return 1
        from localcloud import mainjob

        return 0 if mainjob.run(current) else 1
    else:
        print(json.dumps(launcher.status(), indent=2))
        return 0 if state.read() else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
