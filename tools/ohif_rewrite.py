"""Pure path rewriting of the prebuilt OHIF dist for serving under ``/ohif/`` (no I/O).

The published ``@ohif/app`` dist assumes it is served from ``/``: ``index.html`` names
``/app-config.js``, ``/app.bundle…``, ``/assets/…``; ``window.PUBLIC_URL`` is ``"/"``; the
webpack runtime of the app bundle and of every worker bundle sets its public path
(``__webpack_require__.p = "/"``, ``.p="/"`` when minified), from which chunks, workers and
``.wasm`` codecs load; the CSS loads fonts with ``url(/…)``. Miss one worker bundle and its
decoder silently fails to load. :func:`rewrite_file` rewrites one file; :func:`problems`
checks a whole output tree and is what the build and its tests rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

BASE = "/ohif/"

# The webpack runtime's public path, plain and minified.
PUBLIC_PATH = re.compile(r"""((?:__webpack_require__|\b[A-Za-z_$][\w$]*)\.p\s*=\s*)(["'])/\2""")
PUBLIC_PATH_ANY = re.compile(r"""(?:__webpack_require__|\b[A-Za-z_$][\w$]*)\.p\s*=\s*(["'])(/[^"']*)\1""")
CSS_URL = re.compile(r"""url\((["']?)/(?!/)""")
HTML_ATTR = re.compile(r"""\b(href|src|content)=(["'])/(?!/)""")
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)
SCRIPT_TAG = re.compile(r"""<script\b[^>]*\bsrc=(["'])([^"']+)\1[^>]*>\s*</script>""")
TEXT_SUFFIXES = (".js", ".css", ".html", ".json", ".xml", ".webapp", ".svg", ".txt")

# What the inline scripts of index.html do; the build moves it into pacs-boot.js (the CSP
# allows no inline script). A version whose inline scripts do anything else stops the build.
KNOWN_INLINE = (
    'console.time("scriptToView"),window.PUBLIC_URL="/"',
    'function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"',
)


class RewriteError(Exception):
    """The dist has a shape this build step does not know: review before serving it."""


def absolute_refs(names: Iterable[str]) -> re.Pattern[str]:
    """Quoted (or ``url(``) absolute references to top-level entries of the dist."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"""(["'`(])/(?!ohif/)({alternatives})(?=[/"'`)?#]|$)""")


def rewrite_js(text: str, refs: re.Pattern[str]) -> tuple[str, int]:
    """Public path to ``/ohif/`` and quoted absolute dist paths prefixed; returns the text
    and how many public-path assignments were rewritten."""
    text, count = PUBLIC_PATH.subn(lambda m: f"{m.group(1)}{m.group(2)}{BASE}{m.group(2)}", text)
    text = refs.sub(lambda m: f"{m.group(1)}{BASE}{m.group(2)}", text)
    return text, count


def rewrite_css(text: str) -> str:
    """``url(/x)``, ``url("/x")`` → ``url(/ohif/x)``."""
    return CSS_URL.sub(lambda m: f"url({m.group(1)}{BASE}", text)


def rewrite_index(html: str, boot_scripts: Iterable[str], drop: Iterable[str]) -> str:
    """``index.html``: absolute attributes under ``/ohif/``, the known inline scripts
    removed (their work is in ``pacs-boot.js``), script tags of left-out files removed,
    and ``boot_scripts`` (absolute URLs) loaded before ``app-config.js``."""
    for body in INLINE_SCRIPT.findall(html):
        if body.strip() not in KNOWN_INLINE:
            raise RewriteError(f"index.html has an unknown inline script: {body.strip()[:80]!r}")
    html = INLINE_SCRIPT.sub("", html)
    html = HTML_ATTR.sub(lambda m: f"{m.group(1)}={m.group(2)}{BASE}", html)
    dropped = {BASE + d for d in drop}
    html = SCRIPT_TAG.sub(lambda m: "" if m.group(2) in dropped else m.group(0), html)
    anchor = re.search(r"""<script\b[^>]*\bsrc=(["'])/ohif/app-config\.js\1""", html)
    if not anchor:
        raise RewriteError("index.html does not load app-config.js")
    tags = "".join(f'<script src="{src}"></script>' for src in boot_scripts)
    return html[:anchor.start()] + tags + html[anchor.start():]


def rewrite_file(path: str, data: bytes, refs: re.Pattern[str]) -> tuple[bytes, int]:
    """One file of the dist (``path`` relative to it); returns its bytes and the number of
    public-path assignments rewritten (JavaScript only)."""
    if not path.endswith(TEXT_SUFFIXES) or path == "index.html":
        return data, 0
    text = data.decode("utf-8")
    count = 0
    if path.endswith(".js"):
        text, count = rewrite_js(text, refs)
    elif path.endswith(".css"):
        text = rewrite_css(text)
    else:
        text = refs.sub(lambda m: f"{m.group(1)}{BASE}{m.group(2)}", text)
    return text.encode("utf-8"), count


def problems(files: Mapping[str, bytes], names: Iterable[str]) -> list[str]:
    """Everything in an output tree (relative path → bytes) still pointing at ``/``.

    - every webpack public path (app bundle and every worker bundle) is ``/ohif/``;
    - no JavaScript, CSS, JSON or XML names a top-level dist entry absolutely outside
      ``/ohif/``, and CSS has no ``url(/…)`` outside it;
    - ``index.html`` has no inline script, ``window.PUBLIC_URL`` only from ``pacs-boot.js``,
      and every ``src``/``href`` it names is a file of the tree under ``/ohif/``.
    """
    refs = absolute_refs(names)
    found: list[str] = []
    for path, data in sorted(files.items()):
        if not path.endswith(TEXT_SUFFIXES):
            continue
        text = data.decode("utf-8", "replace")
        for m in PUBLIC_PATH_ANY.finditer(text):
            if m.group(2) != BASE:
                found.append(f"{path}: public path {m.group(2)!r}")
        for m in refs.finditer(text):
            found.append(f"{path}: absolute reference {m.group(0)!r}")
        if path.endswith(".css"):
            for m in re.finditer(r"""url\(["']?/(?!/|ohif/)[^)]*\)""", text):
                found.append(f"{path}: {m.group(0)}")
    index = files.get("index.html", b"").decode()
    if not index:
        found.append("index.html is missing")
    if INLINE_SCRIPT.search(index):
        found.append("index.html: inline script")
    for attr, _q, url in re.findall(r"""\b(href|src|content)=(["'])(/[^"']*)\2""", index):
        if not url.startswith(BASE):
            found.append(f"index.html: {attr}={url}")
        elif attr in ("href", "src") and url[len(BASE):].split("?")[0] not in files:
            found.append(f"index.html: {attr}={url} is not in the build")
    return found


def public_path_files(files: Mapping[str, bytes]) -> list[str]:
    """The bundles with a webpack runtime (the app bundle and every worker bundle)."""
    return sorted(p for p, d in files.items() if p.endswith(".js")
                  and PUBLIC_PATH_ANY.search(d.decode("utf-8", "replace")))
