"""``python -m deploy --project P --region R [--apply]`` (``make deploy``).

Always: checks the per-function requirements are current, stages every function into
``build/functions/<name>/``, writes the bucket CORS and lifecycle files and the plan
``build/deploy/deploy.sh``, and prints the plan. With ``--apply`` it then runs that script
(the printed commands, exactly) with bash.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from deploy import plan as planmod
from deploy import requirements, stage
from deploy.requirements import ROOT


def _load(path: Path):
    return json.loads(path.read_text())


def default_origins(project: str) -> list[str]:
    """The Firebase Hosting origins of the project (the viewer and the upload page)."""
    return [f"https://{project}.web.app", f"https://{project}.firebaseapp.com"]


def make_plan(project: str, region: str, build_dir: Path = stage.BUILD_DIR,
              origins: list[str] | None = None) -> tuple[planmod.Plan, str]:
    """Validate, stage, write the artifacts and build the plan; return it and its script."""
    firebase_config = _load(ROOT / "firebase.json")
    planmod.validate(project, region, firebase_config)
    pins = requirements.lock_pins()
    stale = [folder for folder in sorted(requirements.FOLDER_PACKAGES)
             if not requirements.requirements_path(folder).is_file()
             or requirements.requirements_path(folder).read_text()
             != requirements.requirements_text(folder, pins)]
    if stale:
        raise planmod.PlanError("stale functions/<folder>/requirements.txt for "
                                f"{', '.join(stale)}: run `python -m deploy.requirements`")
    table = _load(ROOT / "infra" / "functions.json")["functions"]
    schedule = _load(ROOT / "infra" / "schedules.json")
    origins = origins or default_origins(project)
    staged = stage.stage_all(table, build_dir)
    artifacts = planmod.write_artifacts(build_dir, origins)
    plan = planmod.build_plan(project, region, table, schedule, build_dir, artifacts, origins)
    plan.warnings.extend(hosting_warnings(ROOT / firebase_config["hosting"]["public"]))
    lines = [f"{s.name}: {planmod.repo_relative(s.path)} ({s.folder}/main.py, entry {s.entry_point})"
             for s in staged]
    script = planmod.render_script(plan, lines)
    out = build_dir / "deploy" / "deploy.sh"
    out.write_text(script)
    out.chmod(0o755)
    return plan, script


SOURCE_OFFER = "Its complete corresponding source: "


def hosting_warnings(hosting_public: Path) -> list[str]:
    """What the built web client lacks for production: the build itself, and the source link
    GPL-3.0 asks of a site serving dwv (``PACS_SOURCE_URL`` at build time, docs/web.md)."""
    shown = planmod.repo_relative(hosting_public)
    if not (hosting_public / "index.html").is_file():
        return [f"{shown}/index.html is missing: build the web client before applying "
                "(firebase deploy needs it)"]
    notice = hosting_public / "third-party-licences.txt"
    if not notice.is_file() or SOURCE_OFFER not in notice.read_text(errors="replace"):
        return [f"{shown}/third-party-licences.txt has no source link: rebuild with "
                "PACS_SOURCE_URL=<where the client's source is published> make web "
                "(the bundle includes dwv, GPL-3.0; see docs/web.md, Licences)"]
    return []


def preflight() -> list[str]:
    """What --apply needs on this machine."""
    problems = []
    if not shutil.which("gcloud"):
        problems.append("gcloud is not on PATH")
    if not (ROOT / planmod.FIREBASE_CLI).exists():
        problems.append(f"{planmod.FIREBASE_CLI} is missing: run `make install`")
    if not shutil.which("python3"):
        problems.append("python3 is not on PATH (the plan generates the hash key with it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True, help="Google Cloud / Firebase project id")
    parser.add_argument("--region", required=True, help="functions, buckets, Firestore, jobs")
    parser.add_argument("--apply", action="store_true", help="run the plan (default: print it)")
    parser.add_argument("--origin", action="append", default=None,
                        help="browser origin allowed by bucket CORS (repeatable; default: "
                             "the project's web.app and firebaseapp.com)")
    parser.add_argument("--build-dir", type=Path, default=stage.BUILD_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        plan, script = make_plan(args.project, args.region, args.build_dir, args.origin)
    except (planmod.PlanError, LookupError, FileNotFoundError) as err:
        print(f"deploy: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(script)
    sys.stdout.flush()
    if not args.apply:
        print(f"# Dry run only. Apply with: make deploy PROJECT={args.project} "
              f"REGION={args.region} APPLY=1", file=sys.stderr)
        return 0
    problems = preflight() + [w for w in plan.warnings]
    if problems:
        for problem in problems:
            print(f"deploy: {problem}", file=sys.stderr)
        return 2
    script_path = args.build_dir / "deploy" / "deploy.sh"
    print(f"# Applying {script_path} ...", file=sys.stderr)
    return subprocess.run(["bash", str(script_path)], cwd=ROOT, env=dict(os.environ)).returncode


if __name__ == "__main__":
    sys.exit(main())
