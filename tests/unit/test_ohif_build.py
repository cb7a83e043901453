"""The OHIF build step (tools/ohif_build.py) on the real pinned @ohif/app tarball: integrity
checked before use, every absolute path of the dist moved under /ohif/ (index.html, the
webpack public path of the app bundle and of every worker bundle, CSS url(), manifests),
nothing unused shipped, and a licence notice for what the dist bundles."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from tools import ohif_build, ohif_licences, ohif_rewrite

PIN = ohif_build.load_pin()


@pytest.fixture(scope="module")
def tarball() -> bytes:
    return ohif_build.fetch_tarball(PIN)


@pytest.fixture(scope="module")
def dist(tarball) -> ohif_build.Dist:
    return ohif_build.read_dist(tarball, PIN)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ohif") / "ohif"
    ohif_build.build(out=out)
    return out


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def original_runtimes(dist: ohif_build.Dist) -> list[str]:
    """Bundles of the published dist whose webpack runtime sets the public path to "/"."""
    plain = re.compile(rb"""(?:__webpack_require__|\b[\w$]+)\.p\s*=\s*(["'])/\1""")
    return sorted(p for p, d in dist.files.items() if p.endswith(".js") and plain.search(d))


def test_the_pinned_tarball_is_checked_before_use(tarball, tmp_path):
    assert ohif_build.sri(tarball) == PIN.integrity
    tampered = bytearray(tarball)
    tampered[len(tampered) // 2] ^= 0xFF
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / PIN.tarball_name).write_bytes(bytes(tampered))
    with pytest.raises(ohif_build.BuildError, match="integrity"):
        ohif_build.check_integrity(cache / PIN.tarball_name, PIN)
    # A tampered cached copy is thrown away and packed again from the registry (npm's cache).
    assert ohif_build.sri(ohif_build.fetch_tarball(PIN, cache)) == PIN.integrity
    # A pin whose integrity does not match what npm packs stops the build: nothing written.
    wrong = ohif_build.Pin(PIN.package, PIN.version, "sha512-" + "A" * 86 + "==", PIN.source)
    out = tmp_path / "out" / "ohif"
    with pytest.raises(ohif_build.BuildError, match="integrity"):
        ohif_build.build(out=out, cache=tmp_path / "other-cache", pin=wrong)
    assert not out.exists()


def test_the_published_dist_assumes_the_root(dist):
    """What the build must fix is really there (the rewrite tests below would pass on a
    no-op otherwise)."""
    found = ohif_rewrite.problems(dist.files, dist.names)
    assert any("app.bundle" in f and "public path" in f for f in found)
    assert any(f.startswith("index.html: src=/app-config.js") for f in found)
    assert any(".css: url(/" in f for f in found)
    assert len(original_runtimes(dist)) >= 5, "the app bundle and the worker bundles"
    assert "window.PUBLIC_URL=\"/\"" in dist.files["index.html"].decode()


def test_every_absolute_path_is_under_ohif(built, dist):
    files = tree(built)
    assert ohif_rewrite.problems(files, dist.names) == []
    # Independently of the rewriter's own check: no quoted or url() path to any top-level
    # entry of the published dist outside /ohif/ in any text file.
    names = "|".join(re.escape(n) for n in sorted(dist.names, key=len, reverse=True))
    root_ref = re.compile(rf"""(["'`(])/({names})(?=[/"'`)?#])""")
    for path, data in files.items():
        if path.endswith((".js", ".css", ".html", ".json", ".xml", ".webapp")):
            text = data.decode("utf-8", "replace")
            assert not root_ref.search(text), (path, root_ref.search(text).group(0))
            assert not re.search(r"url\(['\"]?/(?!ohif/|/)", text), path
    index = files["index.html"].decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index), "no inline script"
    attrs = re.findall(r"""\b(?:href|src)="([^"]+)\"""", index)
    assert attrs and all(a.startswith("/ohif/") and a[6:] in files for a in attrs)
    scripts = re.findall(r"""<script[^>]*\bsrc="([^"]+)\"""", index)
    assert scripts[:3] == ["/ohif/pacs-boot.js", "/ohif/pacs-auth.js", "/ohif/app-config.js"]
    assert "window.PUBLIC_URL = '/ohif/'" in files["pacs-boot.js"].decode()
    manifest = json.loads(files["manifest.json"])
    assert all(icon["src"].startswith("/ohif/assets/") for icon in manifest["icons"])


def test_every_worker_bundle_gets_the_ohif_public_path(built, dist):
    files = tree(built)
    runtimes = original_runtimes(dist)
    assert any(r.startswith("app.bundle.") for r in runtimes)
    for name in runtimes:
        text = files[name].decode()
        assert re.findall(r"""__webpack_require__\.p\s*=\s*"([^"]*)\"""", text) == ["/ohif/"], name
    assert json.loads(files["ohif-build.json"])["public_path_bundles"] == runtimes
    # The decoders (WebAssembly) load from the public path, so they are where it points.
    wasm = [p for p in dist.files if p.endswith(".wasm")]
    assert wasm and all(p in files for p in wasm)


def test_minified_public_path_and_quoted_paths_are_rewritten():
    refs = ohif_rewrite.absolute_refs({"assets", "app.bundle.1.js", "x.worker.js"})
    text, count = ohif_rewrite.rewrite_js(
        'r.p="/",n.src="/assets/a.png";fetch(\'/x.worker.js\');u="/api/keep"', refs)
    assert count == 1
    assert text == 'r.p="/ohif/",n.src="/ohif/assets/a.png";fetch(\'/ohif/x.worker.js\');u="/api/keep"'
    assert ohif_rewrite.rewrite_css("a{src:url(/f.woff2)}b{background:url('/assets/i.png')}") == \
        "a{src:url(/ohif/f.woff2)}b{background:url('/ohif/assets/i.png')}"


def test_unknown_inline_script_stops_the_build():
    html = '<html><head><script>fetch("/evil")</script><script src="/app-config.js"></script>'
    with pytest.raises(ohif_rewrite.RewriteError, match="inline script"):
        ohif_rewrite.rewrite_index(html, ["/ohif/pacs-boot.js"], [])


def test_unused_parts_are_left_out(built, dist):
    files = tree(built)
    for name in ("ort", "dicom-microscopy-viewer", "customizations", "sw.js",
                 "init-service-worker.js", "silent-refresh.html", "oidc-client.min.js"):
        assert name in dist.names, name
        assert not any(p == name or p.startswith(name + "/") for p in files), name
    # Our configuration replaces OHIF's sample one.
    assert "pacsOhifConfig" in files["app-config.js"].decode()
    assert sum(len(d) for d in files.values()) < 80 * 1024 * 1024


def test_licence_notice_lists_what_the_dist_bundles(built, dist):
    text = (built / "third-party-licences.txt").read_text()
    assert f"npm @ohif/app {PIN.version}" in text and PIN.integrity in text
    table = dict(re.findall(r"^(\S+)\s{2,}(\S.*)$", text, re.M))
    assert table["react"] == "MIT" and table["@cornerstonejs/core"] == "MIT"
    assert table["@kitware/vtk.js"] == "BSD-3-Clause" and table["d3-array"] == "ISC"
    assert table["shepherd.js"] == "AGPL-3.0"
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in text
    assert "@cornerstonejs/codec-openjpeg" in table, "the codecs are named by package.json"
    assert "firebase" in text, "pacs-auth.js bundles the Firebase Auth SDK"
    # A package the reviewed table does not know stops the build.
    reviewed = ohif_licences.load_table()
    del reviewed["packages"]["react-dom"]
    with pytest.raises(ohif_licences.LicenceError, match="react-dom"):
        ohif_licences.notice(tree(built), dist.package_json, dist.licence, PIN.as_dict(), reviewed)


def test_unsafe_tarball_members_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/dist/../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ohif_build.BuildError, match="unsafe"):
        ohif_build.read_dist(buf.getvalue(), PIN)
