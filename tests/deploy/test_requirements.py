"""Per-function requirements: current, pinned to requirements-dev.txt, covering what the
folder's code imports, and available for Python 3.12."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from deploy import requirements
from tests.deploy.conftest import ROOT

FUNCTIONS = ROOT / "functions"
# pacs.indexing.preview (numpy, Pillow, pixel codecs) is imported lazily by settle._build_preview,
# which only settle-series runs: only extract_metadata reaches it.
LAZY_ONLY = {"pacs.indexing.preview": {"extract_metadata"}}


def test_requirement_files_are_current():
    pins = requirements.lock_pins()
    for folder in requirements.FOLDER_PACKAGES:
        path = requirements.requirements_path(folder)
        assert path.read_text() == requirements.requirements_text(folder, pins), (
            f"{path} is stale: run `python -m deploy.requirements`")


def test_every_function_folder_has_requirements():
    table = json.loads((ROOT / "infra" / "functions.json").read_text())["functions"]
    folders = {fn["folder"] for fn in table}
    assert folders == set(requirements.FOLDER_PACKAGES)
    on_disk = {p.parent.name for p in FUNCTIONS.glob("*/main.py")}
    assert on_disk == folders


def test_pins_are_exactly_the_lock():
    pins = requirements.lock_pins()
    for folder in requirements.FOLDER_PACKAGES:
        for name, version in requirements.parse_requirements(
                requirements.requirements_path(folder)).items():
            assert pins[name][1] == version, (folder, name)


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in a file (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(FUNCTIONS).with_suffix("").parts[:-1]
                package = package[:len(package) - (node.level - 1)]
                module = ".".join([*package, node.module])
            names.add(module)
            if module.split(".")[0] == "pacs":
                names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _module_file(name: str) -> Path | None:
    base = FUNCTIONS.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _third_party(folder: str) -> set[str]:
    """Top-level third-party modules the folder's code can import."""
    todo = [FUNCTIONS / folder / "main.py"]
    seen: set[str] = set()
    found: set[str] = set()
    while todo:
        for name in _imports(todo.pop()):
            parts = name.split(".")
            if parts[0] == "pacs":
                for depth in range(1, len(parts) + 1):  # parent packages run their __init__
                    module = ".".join(parts[:depth])
                    if module in seen:
                        continue
                    if module in LAZY_ONLY and folder not in LAZY_ONLY[module]:
                        continue
                    path = _module_file(module)
                    if path is not None:
                        seen.add(module)
                        todo.append(path)
            elif parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                found.add(parts[0])
    return found


def test_requirements_cover_the_imports_of_each_folder():
    distributions = metadata.packages_distributions()
    for folder in requirements.FOLDER_PACKAGES:
        pinned = set(requirements.parse_requirements(requirements.requirements_path(folder)))
        for module in _third_party(folder):
            dists = {canonicalize_name(d) for d in distributions.get(module, [])}
            assert dists, f"{folder}: no installed distribution provides {module}"
            assert dists & pinned, f"{folder} imports {module} ({dists}) but does not pin it"
    assert "numpy" in _third_party("extract_metadata")
    assert "pydicom" in _third_party("upload_handler")


def _all_pins() -> list[str]:
    lines: set[str] = set()
    for folder in requirements.FOLDER_PACKAGES:
        for name, version in requirements.parse_requirements(
                requirements.requirements_path(folder)).items():
            lines.add(f"{requirements.lock_pins()[name][0]}=={version}")
    return sorted(lines)


# The python312 runtime is Ubuntu 22.04 (glibc 2.35): any manylinux wheel up to 2_35.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def _pip_download(reqs: list[str], dest: Path, binary: bool) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    if binary:
        argv += ["--only-binary=:all:", "--abi", "cp312"]
        for platform in PLATFORMS:
            argv += ["--platform", platform]
    else:
        argv += ["--no-binary=:all:"]
    return subprocess.run(argv + reqs, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_every_pin_has_a_wheel_or_sdist_for_python_312(tmp_path):
    pins = _all_pins()
    proc = _pip_download(pins, tmp_path / "wheels", binary=True)
    if proc.returncode == 0:
        return
    # Find the ones without a wheel, and check each of those has an sdist.
    without_wheel = [pin for pin in pins
                     if _pip_download([pin], tmp_path / "one", binary=True).returncode != 0]
    assert without_wheel, proc.stderr[-2000:]
    missing = []
    for pin in without_wheel:
        sdist = _pip_download([pin], tmp_path / "sdist", binary=False)
        if sdist.returncode != 0:
            missing.append(f"{pin}: {sdist.stderr.strip()[-300:]}")
    assert not missing, "no wheel and no sdist for Python 3.12:\n" + "\n".join(missing)
