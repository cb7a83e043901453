"""Reading the dry run's printed script back into commands, independently of how
deploy/plan.py renders them."""

from __future__ import annotations

import re
import shlex

CONTROL = {";", "|", "||", "&&", "&"}
REDIRECT = {">", ">>", ">&", "<", "&>"}
CAPTURE_RE = re.compile(r'^([A-Z_][A-Z0-9_]*)="\$\((.*)\)"$')


def logical_lines(text: str) -> list[str]:
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def commands(text: str, programs: tuple[str, ...] = ("gcloud",)) -> list[list[str]]:
    """Every invocation of ``programs`` in the script, as argv (``${VAR}`` left as is)."""
    found: list[list[str]] = []
    for line in logical_lines(text):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        match = CAPTURE_RE.match(s)
        if match:
            s = match.group(2)
        lex = shlex.shlex(s, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        segment: list[str] = []
        segments = [segment]
        for token in lex:
            if token in CONTROL:
                segment = []
                segments.append(segment)
            else:
                segment.append(token)
        for seg in segments:
            cut = next((i for i, t in enumerate(seg) if t in REDIRECT), len(seg))
            seg = seg[:cut]
            start = next((i for i, t in enumerate(seg) if t.split("/")[-1] in programs), None)
            if start is not None:
                found.append(seg[start:])
    return found


def flag_values(argv: list[str], flag: str) -> list[str]:
    """Values of ``--flag=value`` (and ``--flag value``) in argv."""
    values = []
    for i, token in enumerate(argv):
        if token.startswith(flag + "="):
            values.append(token[len(flag) + 1:])
        elif token == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
    return values
