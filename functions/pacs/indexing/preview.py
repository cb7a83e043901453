"""Preview images: one small rendering per instance and the choice of a series' middle slice.

:func:`render_preview` decodes a single frame (the middle one of a multi-frame object) with
``pydicom.pixels.pixel_array(source, index=frame)``, which reads only that frame from a
file object, and renders it for display:

* greyscale: Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence), then the
  first Window Center/Width of the header (DICOM linear VOI function) or, when there is no
  usable window, the 1st-99th percentile range; MONOCHROME1 is inverted;
* colour: YBR data arrive as RGB (pydicom's default colour conversion), PALETTE COLOR goes
  through its lookup table; samples are scaled from their bit depth to 8 bits;
* resized so the longest side is ``size`` pixels, aspect ratio kept.

Output format: 8-bit greyscale is PNG (lossless, small for 256 px, no ringing on text
overlays); colour is JPEG at quality 90 (a fraction of the size of a colour PNG).
:func:`preview_media_type` tells which one a result is.

Decoding runs in-process: pydicom's Python code is guarded (every failure becomes
:class:`PreviewFailed`), but the C codecs behind it (libjpeg, OpenJPEG, CharLS) are trusted
not to crash on hostile input. The frame is size-checked before decoding.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from pacs.dicom.deflate import DEFLATED, inflated_file
from pacs.dicom.header import HeaderRejected, InstanceHeader
from pacs.errors import PacsError

PREVIEW_SIZE = 256
JPEG_QUALITY = 90
#: Largest frame decoded for a preview (rows x columns); ~ a 8k x 8k image.
MAX_FRAME_PIXELS = 64 * 1024 * 1024
DEFAULT_INFLATE_MAX_BYTES = 256 * 1024 * 1024
#: Files up to this size get a second decoding attempt through ``dcmread`` (all in memory).
MAX_FALLBACK_FILE_BYTES = 64 * 1024 * 1024
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

_DECODE_ERRORS = (
    InvalidDicomError, BytesLengthException, ValueError, TypeError, KeyError, IndexError,
    AttributeError, LookupError, ArithmeticError, struct.error, zlib.error, OSError,
    EOFError, NotImplementedError, RuntimeError, AssertionError, UnicodeError, MemoryError,
)


class PreviewFailed(PacsError):
    """No preview for this instance; ``code`` is ``not_image``, ``too_large`` or
    ``undecodable``."""

    code = "preview_failed"
    http_status = 422

    _MESSAGES = {
        "not_image": "This DICOM object has no image to preview.",
        "too_large": "The image is too large to preview.",
        "undecodable": "The image data could not be decoded.",
    }

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or self._MESSAGES.get(code, "No preview could be made."),
                         code=code)


def preview_frame_index(number_of_frames: int | None) -> int:
    """The frame shown for an instance: the middle one (``n // 2``, 0-based)."""
    return max(1, number_of_frames or 1) // 2


def preview_media_type(data: bytes) -> str:
    """``image/png`` or ``image/jpeg`` for a :func:`render_preview` result."""
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


def render_preview(
    fileobj_or_bytes: BinaryIO | bytes,
    header: InstanceHeader,
    *,
    size: int = PREVIEW_SIZE,
    inflate_max_bytes: int = DEFAULT_INFLATE_MAX_BYTES,
    frame: int | None = None,
) -> bytes:
    """Render the preview of one instance whose header :func:`read_header` accepted.

    ``frame``: which frame (0-based, below NumberOfFrames; the caller checks); None: the
    middle one (:func:`preview_frame_index`). Returns PNG (greyscale) or JPEG (colour)
    bytes. Raises :class:`PreviewFailed`.
    """
    if not header.is_image:
        raise PreviewFailed("not_image")
    rows, columns = header.fields["Rows"], header.fields["Columns"]
    if rows * columns > MAX_FRAME_PIXELS:
        raise PreviewFailed("too_large")
    index = preview_frame_index(header.fields["NumberOfFrames"]) if frame is None else frame
    source = (io.BytesIO(bytes(fileobj_or_bytes))
              if isinstance(fileobj_or_bytes, bytes | bytearray | memoryview)
              else fileobj_or_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = Dataset()
            options: dict[str, Any] = {}
            if header.transfer_syntax_uid == DEFLATED:
                source.seek(0, 2)
                source = inflated_file(source, source.tell(),
                                       inflate_max_bytes=inflate_max_bytes)
                options["transfer_syntax_uid"] = EXPLICIT_VR_LITTLE_ENDIAN
            try:
                arr = pixel_array(source, index=index, ds_out=ds, **options)
            except _DECODE_ERRORS:
                arr, ds = _decode_from_dataset(source, index)
            picture = _display_image(arr, ds, size)
            return _encode(picture, size)
        except (HeaderRejected, *_DECODE_ERRORS):
            raise PreviewFailed("undecodable") from None


def _decode_from_dataset(source: BinaryIO, index: int) -> tuple[np.ndarray, Dataset]:
    """Second attempt through a fully read dataset (small files only).

    pydicom's file-object path trusts the transfer syntax for the dataset encoding, while
    ``dcmread`` detects datasets written in the wrong VR encoding (e.g. pydicom's
    ``SC_rgb_jpeg.dcm``: implicit VR under a JPEG transfer syntax).
    """
    source.seek(0, 2)
    if source.tell() > MAX_FALLBACK_FILE_BYTES:
        raise ValueError("file too large for a second attempt")
    source.seek(0)
    ds = dcmread(source)
    return pixel_array(ds, index=index), ds


# --------------------------------------------------------------------------- rendering


def _display_image(arr: np.ndarray, ds: Dataset, size: int) -> Image.Image:
    """One decoded frame -> an 8-bit ``L`` or ``RGB`` PIL image (not yet resized)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if arr.ndim == 3 and arr.shape[0] == 1:  # a single frame returned with a frame axis
        arr = arr[0]
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("unexpected frame shape")
    arr = _decimate(arr, size)

    if photometric == "PALETTE COLOR" and arr.ndim == 2:
        rgb = apply_color_lut(arr, ds)
        # 16-bit LUT entries holding 8-bit values exist in the wild: scale by content.
        bits = 16 if rgb.dtype.itemsize > 1 and int(rgb.max(initial=0)) > 255 else 8
        return Image.fromarray(_scale_bits(rgb, bits), "RGB")
    if arr.ndim == 3:
        if arr.shape[2] != 3:
            raise ValueError("unexpected samples per pixel")
        bits = _int(ds.get("BitsStored")) or 8 * arr.dtype.itemsize
        return Image.fromarray(_scale_bits(arr, bits), "RGB")

    values = apply_modality_lut(arr, ds).astype(np.float64, copy=False)
    low, high = _window(ds)
    if low is None:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise ValueError("no finite pixel values")
        low, high = (float(v) for v in np.percentile(finite, (1, 99)))
    if high <= low:
        high = low + 1.0
    grey = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    grey = np.rint(grey * 255.0).astype(np.uint8)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, "L")


def _window(ds: Dataset) -> tuple[float | None, float | None]:
    """``(low, high)`` of the first linear window in the header, or ``(None, None)``.

    DICOM PS3.3 C.11.2.1.2.1: values at or below ``c - 0.5 - (w - 1) / 2`` are black,
    above ``c - 0.5 + (w - 1) / 2`` white, linear in between.
    """
    center = _first_float(ds.get("WindowCenter"))
    width = _first_float(ds.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None, None
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


def _decimate(arr: np.ndarray, size: int) -> np.ndarray:
    """Drop rows/columns by an integer stride while keeping at least 2x the output size."""
    step = max(arr.shape[0], arr.shape[1]) // (2 * size)
    return arr[::step, ::step] if step >= 2 else arr


def _scale_bits(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits >= 8:
        return np.ascontiguousarray(arr)
    top = float(2 ** max(1, min(bits, 32)) - 1)
    scaled = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255)
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8))


def _encode(picture: Image.Image, size: int) -> bytes:
    width, height = picture.size
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = picture.resize(target, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if picture.mode == "L":
        picture.save(out, format="PNG", optimize=True)
    else:
        picture.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _first_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) or (hasattr(value, "__getitem__")
                                           and not isinstance(value, str | bytes)):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- series


def middle_instance(instances: list[dict]) -> dict:
    """The instance whose image stands for its series: the middle slice.

    ``instances`` are header field dicts (:attr:`InstanceHeader.fields`). Slices are
    ordered by their position along the slice normal (ImagePositionPatient projected on
    the cross product of the ImageOrientationPatient row and column vectors) when every
    instance has both; else by SliceLocation when every instance has one; else by
    InstanceNumber (missing last). Ties keep InstanceNumber, then SOP Instance UID order.
    The middle is index ``n // 2`` of that order. Raises ``ValueError`` for an empty list.
    """
    if not instances:
        raise ValueError("no instances")

    def tie_break(fields: dict) -> tuple:
        number = fields.get("InstanceNumber")
        return (number is None, number if number is not None else 0,
                str(fields.get("SOPInstanceUID") or ""))

    normal = _slice_normal(instances)
    if normal is not None:
        def key(fields: dict) -> tuple:
            position = fields["ImagePositionPatient"]
            return (sum(p * n for p, n in zip(position, normal, strict=True)),
                    *tie_break(fields))
    elif all(_finite(f.get("SliceLocation")) for f in instances):
        def key(fields: dict) -> tuple:
            return (float(fields["SliceLocation"]), *tie_break(fields))
    else:
        key = tie_break
    ordered = sorted(instances, key=key)
    return ordered[len(ordered) // 2]


def _slice_normal(instances: list[dict]) -> tuple[float, float, float] | None:
    """The slice normal shared by the series, if every instance has a position/orientation."""
    normal = None
    for fields in instances:
        position = fields.get("ImagePositionPatient")
        orientation = fields.get("ImageOrientationPatient")
        if not (_vector(position, 3) and _vector(orientation, 6)):
            return None
        if normal is None:
            row, column = orientation[:3], orientation[3:]
            normal = (row[1] * column[2] - row[2] * column[1],
                      row[2] * column[0] - row[0] * column[2],
                      row[0] * column[1] - row[1] * column[0])
    if normal is None or math.isclose(sum(n * n for n in normal), 0.0, abs_tol=1e-12):
        return None
    return normal


def _vector(value: Any, length: int) -> bool:
    return (isinstance(value, list | tuple) and len(value) == length
            and all(_finite(v) for v in value))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)
