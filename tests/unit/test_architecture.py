"""The layout of ``functions/pacs`` holds: imports read from the source (ast), checked against
the layer order written in ``functions/pacs/__init__.py``.

Fails on a cycle between modules (lazy imports inside functions count: they hide a cycle,
they do not remove it), a cycle between subpackages, an import from a later layer, a
library (``dicom``, ``zip``) importing anything of ``pacs`` but its own package and the
shared errors, a library importing a cloud client, a module in no layer, and a subpackage
without a docstring saying what it owns.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACS_DIR = Path(__file__).resolve().parents[2] / "functions" / "pacs"
CLOUD_PACKAGES = ("google", "firebase_admin", "functions_framework", "requests")


@dataclass
class Layout:
    """The modules of a ``pacs`` tree and the ``pacs`` modules each one imports."""

    imports: dict[str, set[str]] = field(default_factory=dict)
    external: dict[str, set[str]] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    docstrings: dict[str, str | None] = field(default_factory=dict)


def module_name(root: Path, path: Path) -> str:
    parts = ("pacs",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_layout(root: Path) -> Layout:
    """Every import statement of every module below ``root`` (the ``pacs`` package)."""
    layout = Layout()
    paths = sorted(root.rglob("*.py"))
    names = {module_name(root, p) for p in paths}
    for path in paths:
        name = module_name(root, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        if path.name == "__init__.py":
            layout.packages.add(name)
            layout.docstrings[name] = ast.get_docstring(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps, external = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [(base, a.name) for a in node.names]
            else:
                continue
            for module, member in targets:
                if module == "pacs" or module.startswith("pacs."):
                    # ``from pacs.x import y``: y is a module, or a name defined in pacs.x
                    target = f"{module}.{member}" if f"{module}.{member}" in names else module
                    if target != "pacs":
                        deps.add(target)
                else:
                    external.add(module.split(".")[0])
        layout.imports[name] = deps - {name}
        layout.external[name] = external
    return layout


def group_of(module: str) -> str:
    """The subpackage (``pacs.dicom``) or core module (``pacs.ids``) a module belongs to."""
    return ".".join(module.split(".")[:2])


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def read_layers(root: Path) -> tuple[dict[str, int], tuple[str, ...], tuple[str, ...]]:
    """LAYERS, LIBRARIES and LIBRARY_MAY_IMPORT from the package's ``__init__.py``."""
    values = {}
    for node in ast.parse((root / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name):
                values[target.id] = ast.literal_eval(node.value)
    layer_of = {f"pacs.{name}": i for i, layer in enumerate(values["LAYERS"]) for name in layer}
    return layer_of, values["LIBRARIES"], values["LIBRARY_MAY_IMPORT"]


def violations(root: Path) -> list[str]:
    """Everything wrong with the layout below ``root``, one sentence each."""
    layout = read_layout(root)
    layer_of, libraries, library_may_import = read_layers(root)
    found = [f"module cycle: {' <-> '.join(c)}" for c in find_cycles(layout.imports)]
    groups: dict[str, set[str]] = {}
    for module, deps in layout.imports.items():
        if module == "pacs":
            continue
        here = group_of(module)
        groups.setdefault(here, set()).update(group_of(d) for d in deps if group_of(d) != here)
        if here not in layer_of:
            found.append(f"{module}: {here} is in no layer of pacs.LAYERS")
            continue
        for dep in sorted(deps):
            there = group_of(dep)
            if there not in layer_of:
                continue
            if layer_of[there] > layer_of[here]:
                found.append(f"{module} imports {dep}: a later layer")
            if here.removeprefix("pacs.") in libraries and there != here \
                    and there.removeprefix("pacs.") not in library_may_import:
                found.append(f"{module} imports {dep}: a library imports only itself and "
                             f"{', '.join(library_may_import)}")
        if here.removeprefix("pacs.") in libraries:
            cloud = sorted(layout.external[module] & set(CLOUD_PACKAGES))
            if cloud:
                found.append(f"{module} imports {', '.join(cloud)}: a library uses no cloud")
    found += [f"subpackage cycle: {' <-> '.join(c)}" for c in find_cycles(groups)]
    found += [f"{p}: its __init__.py needs a docstring saying what it owns"
              for p in sorted(layout.packages) if not layout.docstrings.get(p)]
    return found


# --- the real tree ---------------------------------------------------------------------------

def test_the_pacs_package_keeps_its_layers():
    assert violations(PACS_DIR) == []


def test_every_function_folder_has_its_domain_subpackage():
    # Two hops: function folder -> its subpackage (retention's folder is named like it).
    folders = {"upload_handler": "ingest", "extract_metadata": "indexing", "studies": "studies",
               "sign_link": "links", "privacy_requests": "privacy", "retention": "retention"}
    present = {p.name for p in PACS_DIR.iterdir() if (p / "__init__.py").exists()}
    on_disk = {p.name for p in PACS_DIR.parent.iterdir() if (p / "main.py").exists()}
    assert set(folders) <= on_disk
    assert set(folders.values()) <= present


def test_lazy_imports_are_read():
    layout = read_layout(PACS_DIR)
    # pacs.indexing.settle imports the preview renderer inside a function (pixel codecs load
    # only where previews are built): the graph still has the edge.
    assert "pacs.indexing.preview" in layout.imports["pacs.indexing.settle"]


# --- the checker finds what it is for (a tree made for each case) ---------------------------

LAYERS_SOURCE = '''"""Test tree."""
LAYERS = (("errors", "ids"), ("dicom",), ("indexing",), ("studies",))
LIBRARIES = ("dicom",)
LIBRARY_MAY_IMPORT = ("errors",)
'''


def make_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pacs"
    sources = {"__init__.py": LAYERS_SOURCE, "errors.py": "", "ids.py": "",
               "dicom/__init__.py": '"""Dicom."""', "dicom/header.py": "",
               "indexing/__init__.py": '"""Indexing."""', "indexing/catalog.py": "",
               "studies/__init__.py": '"""Studies."""', "studies/search.py": "", **files}
    for name, text in sources.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_clean_tree_has_no_violation(tmp_path):
    root = make_tree(tmp_path, {"studies/search.py": "from pacs.indexing import catalog\n",
                                "dicom/header.py": "from pacs.errors import PacsError\n"})
    assert violations(root) == []


@pytest.mark.parametrize(("files", "expected"), [
    ({"indexing/catalog.py": "from pacs.indexing import settle\n",
      "indexing/settle.py": "def f():\n    from pacs.indexing.catalog import x\n"},
     "module cycle: pacs.indexing.catalog <-> pacs.indexing.settle"),
    ({"indexing/catalog.py": "from pacs.studies import search\n"},
     "pacs.indexing.catalog imports pacs.studies.search: a later layer"),
    ({"dicom/header.py": "from pacs import ids\n"},
     "pacs.dicom.header imports pacs.ids: a library imports only itself and errors"),
    ({"dicom/header.py": "from google.cloud import storage\n"},
     "pacs.dicom.header imports google: a library uses no cloud"),
    ({"misc.py": ""}, "pacs.misc: pacs.misc is in no layer of pacs.LAYERS"),
    ({"studies/__init__.py": ""},
     "pacs.studies: its __init__.py needs a docstring saying what it owns"),
    ({"indexing/catalog.py": "from . import keys\n",
      "indexing/keys.py": "from .catalog import x\n"},
     "module cycle: pacs.indexing.catalog <-> pacs.indexing.keys"),
])
def test_the_checker_reports(tmp_path, files, expected):
    assert expected in violations(make_tree(tmp_path, files))


def test_a_cycle_between_subpackages_is_reported(tmp_path):
    # Same layer, so only the subpackage cycle check can catch it.
    layers = LAYERS_SOURCE.replace('("indexing",), ("studies",)', '("indexing", "studies")')
    root = make_tree(tmp_path, {"__init__.py": layers,
                                "indexing/catalog.py": "from pacs.studies import search\n",
                                "studies/query.py": "from pacs.indexing import catalog\n"})
    assert "subpackage cycle: pacs.indexing <-> pacs.studies" in violations(root)
