"""Accept negotiation for DICOMweb (PS3.18 §8.7): parse an ``Accept`` header and choose one
of the representations a resource offers, or refuse with 406.

The header is a comma list of media ranges, each ``type/subtype`` with ``;`` parameters whose
values are tokens or quoted strings (commas and semicolons inside quotes are data):

    multipart/related; type="application/dicom"; transfer-syntax=*, application/zip;q=0.5

- ``q`` (0 to 1, at most three decimals) weighs a range; ``q=0`` refuses what it matches.
- ``*/*`` and ``type/*`` match any media type (of that type).
- ``multipart/related`` ranges carry the part's media type in ``type``; a range without it
  means the resource's default part type (``application/dicom`` for instances,
  ``application/octet-stream`` for bulk data), passed to :func:`choose`.
- ``transfer-syntax`` names the syntax wanted; ``*`` accepts any. A range that names none
  accepts the offers marked ``default`` (PS3.18 makes that Explicit VR Little Endian; a
  resource that sends what is stored marks its stored syntax ``default`` and says so).

Each offer takes the ``q`` of the most specific range that matches it (RFC 9110 §12.5.1);
the highest wins, ties go to the order of the offers (the server's preference). No header,
or an empty one, takes the first offer. A malformed header is 400 ``bad_accept``; a header
that allows none of the offers is 406 ``not_acceptable``, naming what is offered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pacs.errors import BadRequest, PacsError

MAX_ACCEPT_CHARS = 4096
MAX_RANGES = 64
MULTIPART = "multipart/related"
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class NotAcceptable(PacsError):
    """Nothing in the request's ``Accept`` can be served (406)."""

    code = "not_acceptable"
    http_status = 406


def _bad(message: str) -> BadRequest:
    return BadRequest(f"malformed Accept header: {message}", code="bad_accept")


@dataclass(frozen=True)
class MediaRange:
    """One element of an ``Accept`` list. Names are lower case; ``type`` values too."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    def covers(self, media_type: str) -> bool:
        """Whether this range's ``type/subtype`` (with wildcards) matches ``media_type``."""
        return _covers(self.media_type, media_type)

    @property
    def specificity(self) -> int:
        """2 for ``type/subtype``, 1 for ``type/*``, 0 for ``*/*``; plus parameters."""
        main, _, sub = self.media_type.partition("/")
        rank = 0 if main == "*" else 1 if sub == "*" else 2
        return rank * 10 + len(self.params)


@dataclass(frozen=True)
class Offer:
    """A representation the resource can send.

    ``media_type`` is what the response's Content-Type starts with; ``part_type`` is the
    media type of each part when it is ``multipart/related``; ``transfer_syntax`` the syntax
    the bytes are in (None when it does not apply); ``default`` whether a range that names no
    transfer syntax accepts this offer.
    """

    media_type: str
    part_type: str | None = None
    transfer_syntax: str | None = None
    default: bool = True

    def describe(self) -> str:
        """The offer as an Accept range (for 406 messages)."""
        text = self.media_type
        if self.part_type:
            text += f'; type="{self.part_type}"'
        if self.transfer_syntax:
            text += f"; transfer-syntax={self.transfer_syntax}"
        return text


def _covers(pattern: str, media_type: str) -> bool:
    main, _, sub = pattern.partition("/")
    want_main, _, want_sub = media_type.lower().partition("/")
    return main == "*" or (main == want_main and sub in ("*", want_sub))


def _split(text: str, sep: str) -> Iterator[str]:
    """``text`` split at ``sep`` outside quoted strings (backslash escapes inside)."""
    start, quoted, escaped = 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            yield text[start:i]
            start = i + 1
    if quoted:
        raise _bad("unterminated quoted string")
    yield text[start:]


def _token(text: str, what: str) -> str:
    if not text or not set(text) <= _TOKEN:
        raise _bad(f"bad {what} {text[:40]!r}")
    return text


def _value(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        out, escaped = [], False
        for ch in raw[1:-1]:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    if not raw or not set(raw) <= _TOKEN | {"/"}:  # unquoted type=application/dicom is common
        raise _bad(f"bad parameter value {raw[:40]!r}")
    return raw


def _q(raw: str) -> float:
    text = raw.strip()
    whole, _, decimals = text.partition(".")
    if whole not in ("0", "1") or len(decimals) > 3 or (decimals and not decimals.isdigit()):
        raise _bad(f"bad q value {text[:10]!r}")
    q = float(text)
    if q > 1:
        raise _bad(f"bad q value {text[:10]!r}")
    return q


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an ``Accept`` header, in order; ``[*/*]`` when absent or empty.

    Raises
    ------
    BadRequest
        ``bad_accept``: malformed syntax, or longer than ``MAX_ACCEPT_CHARS`` characters or
        ``MAX_RANGES`` ranges.
    """
    if header is None or not header.strip():
        return [MediaRange("*/*")]
    if len(header) > MAX_ACCEPT_CHARS:
        raise _bad(f"longer than {MAX_ACCEPT_CHARS} characters")
    items = [item for item in _split(header, ",") if item.strip()]
    if len(items) > MAX_RANGES:
        raise _bad(f"more than {MAX_RANGES} media ranges")
    out = []
    for item in items:
        media, *raw_params = list(_split(item, ";"))
        main, slash, sub = media.strip().lower().partition("/")
        if not slash or (main == "*" and sub != "*"):
            raise _bad(f"bad media range {media.strip()[:40]!r}")
        media_type = f"{_token(main, 'media type')}/{_token(sub, 'media subtype')}"
        params: dict[str, str] = {}
        q = 1.0
        for raw in raw_params:
            if not raw.strip():
                continue
            name, eq, value = raw.partition("=")
            name = _token(name.strip().lower(), "parameter name")
            if not eq:
                raise _bad(f"parameter {name!r} without a value")
            if name == "q":
                q = _q(value)
                continue
            params[name] = _value(value).lower() if name == "type" else _value(value)
        out.append(MediaRange(media_type, params, q))
    return out


def _matches(rng: MediaRange, offer: Offer, default_part_type: str | None) -> bool:
    if not rng.covers(offer.media_type):
        return False
    if offer.part_type is not None and rng.media_type != "*/*":
        wanted = rng.params.get("type", default_part_type)
        if wanted is not None and not _covers(wanted, offer.part_type):
            return False
    if offer.transfer_syntax is None:
        return True
    syntax = rng.params.get("transfer-syntax")
    if syntax is None:
        return offer.default or rng.media_type == "*/*"
    return syntax == "*" or syntax == offer.transfer_syntax


def quality(ranges: Sequence[MediaRange], offer: Offer,
            default_part_type: str | None = None) -> float:
    """The ``q`` of the most specific range matching ``offer`` (0 when none does)."""
    best: MediaRange | None = None
    for rng in ranges:
        if _matches(rng, offer, default_part_type) and (
                best is None or rng.specificity > best.specificity):
            best = rng
    return best.q if best else 0.0


def choose(accept: str | None, offers: Sequence[Offer], *,
           default_part_type: str | None = None) -> Offer:
    """The offer ``accept`` (the header; None when absent) prefers.

    Raises
    ------
    BadRequest
        ``bad_accept``: the header is malformed.
    NotAcceptable
        No offer has a ``q`` above 0; the message lists the offers.
    """
    ranges = parse_accept(accept)
    best, best_q = None, 0.0
    for offer in offers:
        q = quality(ranges, offer, default_part_type)
        if q > best_q:
            best, best_q = offer, q
    if best is None:
        raise NotAcceptable("nothing in Accept can be served; this resource offers: "
                            + ", ".join(o.describe() for o in offers))
    return best
