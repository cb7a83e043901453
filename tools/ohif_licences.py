"""The third-party notice of the hosted OHIF Viewer (``/ohif/third-party-licences.txt``).

The prebuilt dist carries no licence files of what it bundles, so the packages are read
from the bundles themselves: webpack names every module by its path, and the innermost
``node_modules/<package>`` of each path is a bundled package. Together with the runtime
dependencies of ``@ohif/app``'s ``package.json`` (the codecs are WebAssembly and named
nowhere else) each must have a licence id in ``web/ohif/licences.json``; a package missing
there stops the build, so a version bump is reviewed rather than shipped unlisted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OHIF_DIR = ROOT / "web" / "ohif"
STANDARD_TEXTS = ROOT / "web" / "licences"
MODULE_PATH = re.compile(
    rb"node_modules/((?:@[a-z0-9._-]+/)?[a-z0-9._-]+)((?:/node_modules/(?:@[a-z0-9._-]+/)?[a-z0-9._-]+)*)")
NESTED = re.compile(r"/node_modules/((?:@[a-z0-9._-]+/)?[a-z0-9._-]+)")
SPDX_ID = re.compile(r"[A-Za-z0-9.+-]+")


class LicenceError(Exception):
    """A bundled package has no reviewed licence id, or a licence text is missing."""


@dataclass(frozen=True)
class Notice:
    text: str
    packages: dict[str, str]


def bundled_packages(bundles: Iterable[bytes]) -> set[str]:
    """Innermost package of every ``node_modules`` path named in the bundles."""
    names: set[str] = set()
    for data in bundles:
        for m in MODULE_PATH.finditer(data):
            chain = [m.group(1).decode(), *NESTED.findall(m.group(2).decode())]
            names.add(chain[-1])
    return names


def licence_ids(expression: str) -> list[str]:
    """SPDX ids of an expression such as ``(MIT AND Zlib)``."""
    return [t for t in SPDX_ID.findall(expression) if t not in ("AND", "OR", "WITH")]


def load_table(path: Path = OHIF_DIR / "licences.json") -> dict:
    return json.loads(path.read_text())


def notice(files: Mapping[str, bytes], package_json: Mapping, ohif_licence: str,
           pin: Mapping[str, str], table: Mapping | None = None,
           extra_notice: str = "") -> Notice:
    """The notice text for an output tree (relative path → bytes)."""
    table = table or load_table()
    known: dict[str, str] = table["packages"]
    found = bundled_packages(d for p, d in files.items() if p.endswith(".js"))
    runtime = {n for n in package_json.get("dependencies", {})
               if n not in table["build_only"] and not n.startswith("@ohif/")}
    names = sorted(found | runtime)
    missing = [n for n in names if n not in known]
    if missing:
        raise LicenceError("no reviewed licence id in web/ohif/licences.json for: "
                           + ", ".join(missing))
    used = {n: known[n] for n in names}
    own = table.get("own_text", {})
    embedded = table.get("embedded", {})
    rule = "=" * 78
    head = [
        "Open-source licences of the OHIF Viewer hosted under /ohif/",
        "",
        f"This is the prebuilt OHIF Viewer, npm {pin['package']} {pin['version']}",
        f"({pin['integrity']}), served with its paths moved under /ohif/ and",
        "this site's configuration (app-config.js, pacs-boot.js, pacs-auth.js). Its source:",
        f"{pin['source']}. The JavaScript it sends to your browser contains OHIF's own",
        "packages (@ohif/*, MIT, below) and the npm packages listed after it.",
        "",
        "shepherd.js (guided tours in the viewer) is offered by its authors under AGPL-3.0",
        "or a commercial licence: its licence file is reproduced in full below.",
        "",
        "Package                                             Licence",
        *(f"{n:<52}{lic}" for n, lic in used.items()),
        "",
        rule, f"{pin['package']} {pin['version']} (OHIF, all @ohif/* packages) - MIT", rule, "",
        ohif_licence.strip(), "",
    ]
    bodies: list[str] = []
    standard: set[str] = set()
    for name, lic in used.items():
        if name in embedded:
            bodies += [f"{name}: also contains {embedded[name]}"]
        if name in own:
            text = (OHIF_DIR / own[name]).read_text().strip()
            bodies += ["", rule, f"{name} - {lic}: its licence file", rule, "", text, ""]
        else:
            standard.update(licence_ids(lic))
    tail: list[str] = ["", "Packages without their own text above are under the standard "
                       "licence texts below; their copyright holders are named in each package."]
    for lic in sorted(standard):
        path = STANDARD_TEXTS / f"{lic}.txt"
        if not path.is_file():
            raise LicenceError(f"standard licence text {path} is missing")
        tail += ["", rule, f"Standard text: {lic}", rule, "", path.read_text().strip()]
    parts = [*head, *bodies, *tail]
    if extra_notice:
        parts += ["", rule, "pacs-auth.js (this site's sign-in bridge)", rule, "", extra_notice.strip()]
    return Notice("\n".join(parts) + "\n", used)
