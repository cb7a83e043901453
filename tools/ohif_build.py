"""Build step of the hosted OHIF Viewer: ``web/dist/ohif/`` from the pinned npm tarball.

``make web`` runs it after the web client's Vite build (``python -m tools.ohif_build``):

1. **The tarball**: ``npm pack`` of the version pinned in ``web/ohif/pin.json`` into
   ``.cache/ohif/`` (gitignored; reused while its hash matches), never ``npm install``
   (that pulls the whole dependency tree and wants Node 24). Its SHA-512 must equal the
   pinned ``integrity`` (the registry's SRI string) before anything is read from it; a
   mismatch deletes the cached file and stops the build.
2. **The dist**: regular files under ``package/dist/`` only (no links, no ``..``), without
   what this site does not use (:data:`LEFT_OUT`: the onnxruntime models, microscopy,
   URL-loaded customizations, the service worker, OIDC pages, netlify files, OHIF's sample
   ``app-config.js``).
3. **Paths** moved under ``/ohif/`` (``tools/ohif_rewrite.py``), checked by
   :func:`tools.ohif_rewrite.problems` before anything is written.
4. **Our files**: ``app-config.js`` and ``pacs-boot.js`` from ``web/ohif/``, ``pacs-auth.js``
   (the sign-in bridge, built by Vite from ``web/ohif/auth-bridge.ts``), and
   ``third-party-licences.txt`` (``tools/ohif_licences.py``).
5. Written to a temporary folder beside the output and swapped in, so a failed build never
   leaves a half-written viewer.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tools import ohif_licences, ohif_rewrite

ROOT = Path(__file__).resolve().parent.parent
OHIF_SRC = ROOT / "web" / "ohif"
CACHE = ROOT / ".cache" / "ohif"
OUT = ROOT / "web" / "dist" / "ohif"
LEFT_OUT = frozenset({
    "ort", "dicom-microscopy-viewer", "customizations", "sw.js", "init-service-worker.js",
    "_headers", "_redirects", "serve.json", "google.js", "oidc-client.min.js",
    "silent-refresh.html", "es6-shim.min.js", "polyfill.min.js", "app-config.js",
})
OUR_FILES = ("app-config.js", "pacs-boot.js")
BOOT_SCRIPTS = ("/ohif/pacs-boot.js", "/ohif/pacs-auth.js")
MAX_DIST_BYTES = 512 * 1024 * 1024


class BuildError(Exception):
    """The build cannot produce a trustworthy viewer (integrity, shape, licences)."""


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    integrity: str
    source: str

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def tarball_name(self) -> str:
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    def as_dict(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version,
                "integrity": self.integrity, "source": self.source}


@dataclass
class Dist:
    files: dict[str, bytes]
    names: set[str]
    package_json: dict
    licence: str


@dataclass
class Report:
    out: Path
    files: int = 0
    bytes: int = 0
    public_paths: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def load_pin(path: Path = OHIF_SRC / "pin.json") -> Pin:
    return Pin(**json.loads(path.read_text()))


def sri(data: bytes) -> str:
    """The registry's integrity string (Subresource Integrity form) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def check_integrity(path: Path, pin: Pin) -> bytes:
    data = path.read_bytes()
    if sri(data) != pin.integrity:
        raise BuildError(f"{path.name}: integrity {sri(data)[:30]}… is not the pinned "
                         f"{pin.integrity[:30]}… of {pin.spec}")
    return data


def fetch_tarball(pin: Pin, cache: Path = CACHE) -> bytes:
    """The pinned tarball's bytes, integrity checked; packed with ``npm pack`` when absent."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / pin.tarball_name
    if target.is_file():
        try:
            return check_integrity(target, pin)
        except BuildError:
            target.unlink()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(["npm", "pack", pin.spec, "--pack-destination", tmp, "--silent",
                        "--no-audit", "--no-fund"], check=True, cwd=tmp, timeout=900,
                       stdout=subprocess.DEVNULL)
        packed = Path(tmp) / pin.tarball_name
        if not packed.is_file():
            raise BuildError(f"npm pack {pin.spec} wrote no {pin.tarball_name}")
        data = check_integrity(packed, pin)
        os.replace(packed, target)
    return data


def read_dist(tarball: bytes, pin: Pin) -> Dist:
    """The files of ``package/dist/`` (minus :data:`LEFT_OUT`), safely read."""
    files: dict[str, bytes] = {}
    names: set[str] = set()
    package_json: dict = {}
    licence = ""
    total = 0
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.name.startswith("/") or ".." in parts or len(parts) < 2:
                raise BuildError(f"unsafe member name {member.name!r}")
            if not member.isfile():
                if member.issym() or member.islnk():
                    raise BuildError(f"link in the tarball: {member.name!r}")
                continue
            if parts[1:] == ("package.json",):
                package_json = json.loads(tar.extractfile(member).read())
            elif parts[1:] == ("LICENSE",):
                licence = tar.extractfile(member).read().decode()
            if parts[1] != "dist" or len(parts) < 3:
                continue
            names.add(parts[2])
            if parts[2] in LEFT_OUT:
                continue
            total += member.size
            if total > MAX_DIST_BYTES:
                raise BuildError("the dist is larger than expected")
            files["/".join(parts[2:])] = tar.extractfile(member).read()
    if package_json.get("name") != pin.package or package_json.get("version") != pin.version:
        raise BuildError(f"the tarball is {package_json.get('name')}@{package_json.get('version')}, "
                         f"not {pin.spec}")
    if "index.html" not in files or not licence:
        raise BuildError("the tarball has no dist/index.html or no LICENSE")
    return Dist(files, names, package_json, licence)


def build_bridge(workdir: Path) -> tuple[bytes, str]:
    """``pacs-auth.js`` and its licence notice, built by Vite (``web/ohif/vite.config.ts``)."""
    env = {**os.environ, "PACS_OHIF_BRIDGE_OUT": str(workdir)}
    subprocess.run(["npx", "--no-install", "vite", "build", "--config", "ohif/vite.config.ts",
                    "--logLevel", "warn"], cwd=ROOT / "web", env=env, check=True, timeout=600)
    return ((workdir / "pacs-auth.js").read_bytes(),
            (workdir / "pacs-auth-licences.txt").read_text())


def assemble(dist: Dist, pin: Pin, bridge: tuple[bytes, str]) -> tuple[dict[str, bytes], list[str]]:
    """The output tree (relative path → bytes) and the bundles whose public path moved."""
    refs = ohif_rewrite.absolute_refs(dist.names)
    out: dict[str, bytes] = {}
    rewritten: list[str] = []
    for path, data in dist.files.items():
        new, count = ohif_rewrite.rewrite_file(path, data, refs)
        out[path] = new
        if count:
            rewritten.append(path)
    out["index.html"] = ohif_rewrite.rewrite_index(
        dist.files["index.html"].decode(), BOOT_SCRIPTS, sorted(LEFT_OUT - set(OUR_FILES))).encode()
    for name in OUR_FILES:
        out[name] = (OHIF_SRC / name).read_bytes()
    out["pacs-auth.js"] = bridge[0]
    found = ohif_rewrite.problems(out, dist.names)
    if found:
        raise BuildError("paths still outside /ohif/:\n  " + "\n  ".join(found[:20]))
    runtimes = ohif_rewrite.public_path_files(out)
    if sorted(rewritten) != runtimes or not runtimes:
        raise BuildError(f"public paths rewritten in {sorted(rewritten)}, runtimes in {runtimes}")
    notice = ohif_licences.notice(out, dist.package_json, dist.licence, pin.as_dict(),
                                  extra_notice=bridge[1])
    out["third-party-licences.txt"] = notice.text.encode()
    out["ohif-build.json"] = json.dumps({
        **pin.as_dict(), "left_out": sorted(LEFT_OUT & dist.names),
        "public_path_bundles": runtimes}, indent=1).encode()
    return out, runtimes


def write_tree(files: dict[str, bytes], out: Path) -> None:
    """Write to a hidden folder beside ``out`` (Hosting ignores dot files), then swap."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ohif-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 is not a served folder's mode
    try:
        for rel, data in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        old = Path(tempfile.mkdtemp(prefix=".ohif-old-", dir=out.parent))
        if out.exists():
            os.replace(out, old)  # onto the empty folder
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build(out: Path = OUT, cache: Path = CACHE, pin: Pin | None = None) -> Report:
    """The whole step; see the module docstring."""
    pin = pin or load_pin()
    dist = read_dist(fetch_tarball(pin, cache), pin)
    with tempfile.TemporaryDirectory(prefix="pacs-ohif-bridge-") as tmp:
        bridge = build_bridge(Path(tmp))
    files, runtimes = assemble(dist, pin, bridge)
    write_tree(files, out)
    return Report(out, len(files), sum(len(d) for d in files.values()), runtimes,
                  sorted(LEFT_OUT & dist.names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ohif_build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    try:
        report = build(args.out, args.cache)
    except (BuildError, ohif_rewrite.RewriteError, ohif_licences.LicenceError) as err:
        print(f"ohif build: {err}", file=sys.stderr)
        return 1
    print(f"ohif build: {report.files} files, {report.bytes / 1e6:.1f} MB in {report.out} "
          f"({len(report.public_paths)} bundles with a public path; left out: "
          f"{', '.join(report.left_out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
