"""Stage each function into its own build folder: ``build/functions/<name>/`` holds the
folder's ``main.py``, a copy of the shared package ``pacs/`` (real files, no symlinks: the
upload to Cloud Build must carry them) and the folder's pinned ``requirements.txt``.

A folder with several entry points is staged once per function (per table row); each
copy is what ``gcloud functions deploy --source`` uploads, so it must stand alone.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.requirements import FUNCTIONS_DIR, ROOT

SHARED_PACKAGE = "pacs"
BUILD_DIR = ROOT / "build"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")

# What the upload to Cloud Build may leave out (gcloud honours .gcloudignore).
GCLOUDIGNORE = """\
# Written by deploy/stage.py: upload only the function's code.
.gcloudignore
__pycache__/
*.pyc
"""


@dataclass(frozen=True)
class StagedFunction:
    name: str
    folder: str
    entry_point: str
    path: Path


def stage_function(fn: dict[str, Any], build_dir: Path = BUILD_DIR,
                   functions_dir: Path = FUNCTIONS_DIR) -> StagedFunction:
    """Copy one table row's code into ``build_dir/functions/<name>/`` (replacing it)."""
    source = functions_dir / fn["folder"]
    requirements = source / "requirements.txt"
    if not requirements.is_file():
        raise FileNotFoundError(f"{requirements} is missing: run `python -m deploy.requirements`")
    target = build_dir / "functions" / fn["name"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(source / "main.py", target / "main.py")
    shutil.copy2(requirements, target / "requirements.txt")
    shutil.copytree(functions_dir / SHARED_PACKAGE, target / SHARED_PACKAGE, ignore=IGNORED,
                    symlinks=False)
    (target / ".gcloudignore").write_text(GCLOUDIGNORE)
    return StagedFunction(fn["name"], fn["folder"], fn["entry_point"], target)


def stage_all(functions: list[dict[str, Any]], build_dir: Path = BUILD_DIR,
              functions_dir: Path = FUNCTIONS_DIR) -> list[StagedFunction]:
    """Stage every function of the table; folders of functions no longer in it are removed."""
    root = build_dir / "functions"
    staged = [stage_function(fn, build_dir, functions_dir) for fn in functions]
    keep = {s.name for s in staged}
    for old in root.iterdir():
        if old.is_dir() and old.name not in keep:
            shutil.rmtree(old)
    return staged
