"""The DICOM test corpus: every file shipped by pydicom and by the pydicom-data package.

``pydicom.data.get_testdata_files()`` is not used for listing: it filters pydicom-data files
by checksum and tries to download the rest from GitHub (slow, and it fails offline). Instead
the installed data directories are listed directly:

* ``pydicom/data/test_files`` (recursively, including the DICOMDIR trees),
  ``pydicom/data/charset_files`` and ``pydicom/data/palettes`` (pydicom itself);
* ``data_store/data`` of the ``pydicom-data`` distribution, found through its registered
  ``pydicom.data.external_sources`` entry point (this is where ``693_UNCI.dcm``,
  the 512x512 CT, lives).

Non-DICOM files that sit next to them (README, JSON, dumps, ICC profile, gzip) are kept on
purpose: they are hostile input for the header reader and must be rejected.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from pathlib import Path

import pydicom.data

PYDICOM_DATA = Path(pydicom.data.__file__).resolve().parent
PYDICOM_DIRS = ("test_files", "charset_files", "palettes")


def pydicom_data_dir() -> Path | None:
    """The data directory of the installed pydicom-data package, or None."""
    for ep in entry_points(group="pydicom.data.external_sources"):
        if ep.name == "pydicom-data":
            source = ep.load()()
            return Path(source.data_path)
    return None


def _listed(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")
    )


@functools.lru_cache(maxsize=1)
def corpus() -> dict[str, Path]:
    """Every corpus file, keyed by a unique, readable id (``pydicom/<dir>/...``)."""
    files: dict[str, Path] = {}
    for name in PYDICOM_DIRS:
        root = PYDICOM_DATA / name
        for path in _listed(root):
            files[f"pydicom/{path.relative_to(PYDICOM_DATA).as_posix()}"] = path
    extra = pydicom_data_dir()
    if extra is not None:
        for path in _listed(extra):
            files[f"pydicom-data/{path.relative_to(extra).as_posix()}"] = path
    return files


def corpus_file(name: str) -> Path:
    """The first corpus file with this base name (e.g. ``"693_UNCI.dcm"``)."""
    for path in corpus().values():
        if path.name == name:
            return path
    raise FileNotFoundError(name)
