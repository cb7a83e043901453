"""What the caller may know of an archive member, and how members are named and classified.

A member's raw name is untrusted: it is decoded without errors, cleaned of characters that
are unsafe in logs, CSV and HTML, cut to :data:`DISPLAY_NAME_MAX` characters and never used
as a path. Its kind (file, directory, symlink, encrypted, ...) decides whether it may be
opened at all.
"""

from __future__ import annotations

import stat
import unicodedata
from dataclasses import dataclass

from pacs.zip.format import (
    AES,
    DEFLATED,
    DOS_DIRECTORY,
    FLAG_ENCRYPTED,
    FLAG_STRONG_ENCRYPTION,
    FLAG_UTF8,
    STORED,
)

#: Member kinds that :meth:`pacs.zip.safety.SafeArchive.open` will stream.
READABLE_KINDS = frozenset({"file", "dicomdir"})

DISPLAY_NAME_MAX = 255


@dataclass(frozen=True)
class MemberInfo:
    """What the caller may know about one member.

    Attributes
    ----------
    index : int
        Position in the central directory (0-based); the member's stable identity.
    display_name : str
        The member name as untrusted text, for metadata only: decoded without errors, control
        and format characters replaced by U+FFFD, at most 255 characters. Never a path.
    size : int
        Declared uncompressed size (enforced while streaming).
    compressed_size : int
        Declared compressed size.
    kind : str
        ``file``, ``directory``, ``symlink``, ``encrypted``, ``unsupported_compression`` or
        ``dicomdir``. Only ``file`` and ``dicomdir`` can be opened.
    """

    index: int
    display_name: str
    size: int
    compressed_size: int
    kind: str


def decode_name(raw: bytes, flags: int) -> str:
    """A raw member name as text, decoded without errors."""
    # Bit 11 promises UTF-8; otherwise the spec's default is cp437, which decodes any byte.
    return raw.decode("utf-8", "replace") if flags & FLAG_UTF8 else raw.decode("cp437")


def display_name(name: str) -> str:
    """``name`` fit to show (:attr:`MemberInfo.display_name`): unsafe characters replaced."""
    # Cc (NUL, escapes, newlines) and Cf (bidi overrides that spoof names), and line and
    # paragraph separators, are unsafe in logs, CSV and HTML alike.
    unsafe = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    clean = "".join("\ufffd" if unicodedata.category(ch) in unsafe else ch for ch in name)
    return clean[:DISPLAY_NAME_MAX]


def classify(name: str, flags: int, method: int, external_attr: int) -> str:
    """The member's :attr:`MemberInfo.kind`, from its central directory entry."""
    mode = external_attr >> 16
    if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) or method == AES:
        return "encrypted"
    if method not in (STORED, DEFLATED):
        return "unsupported_compression"
    # Unix mode bits are honoured whatever the host byte says: skipping a symlink is safe,
    # treating one as a file is not.
    if stat.S_ISLNK(mode):
        return "symlink"
    dos_dir = not mode and external_attr & DOS_DIRECTORY  # Windows writers set no mode
    if name.endswith(("/", "\\")) or stat.S_ISDIR(mode) or dos_dir:
        return "directory"
    basename = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "dicomdir" if basename.upper() == "DICOMDIR" else "file"
