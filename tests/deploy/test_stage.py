"""Staging: one standalone build folder per function of the table."""

from __future__ import annotations

import filecmp
import os

from deploy import stage
from tests.deploy.conftest import ROOT


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def test_each_function_staged_standalone(dry_run, tmp_path):
    functions = ROOT / "functions"
    assert sorted(p.name for p in (dry_run.build_dir / "functions").iterdir()) == sorted(
        fn["name"] for fn in dry_run.table)
    # Compare a fresh staging with the sources right away (others may edit them meanwhile).
    stage.stage_all(dry_run.table, tmp_path)
    staged_root = tmp_path / "functions"
    for fn in dry_run.table:
        folder = staged_root / fn["name"]
        assert filecmp.cmp(folder / "main.py", functions / fn["folder"] / "main.py", shallow=False)
        assert filecmp.cmp(folder / "requirements.txt",
                           functions / fn["folder"] / "requirements.txt", shallow=False)
        assert _files(folder / "pacs") == _files(functions / "pacs")
        for name in _files(folder / "pacs"):
            assert filecmp.cmp(folder / "pacs" / name, functions / "pacs" / name, shallow=False)
        for dirpath, dirnames, filenames in os.walk(folder):
            for entry in dirnames + filenames:
                assert not os.path.islink(os.path.join(dirpath, entry)), entry
        assert sorted(p.name for p in folder.iterdir()) == [
            ".gcloudignore", "main.py", "pacs", "requirements.txt"]


def test_restaging_replaces_and_prunes(tmp_path):
    table = [{"name": "studies", "folder": "studies", "entry_point": "studies",
              "trigger": {"type": "http"}}]
    stale = tmp_path / "functions" / "gone-function"
    stale.mkdir(parents=True)
    leftover = tmp_path / "functions" / "studies" / "pacs" / "old_module.py"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("x = 1\n")
    staged = stage.stage_all(table, tmp_path)
    assert [s.name for s in staged] == ["studies"]
    assert not stale.exists() and not leftover.exists()
    assert (tmp_path / "functions" / "studies" / "pacs" / "settings.py").is_file()
