"""The independent reference of the preview tests (``tests/unit/test_preview*.py``): a
frame rendered with pydicom's full-dataset decoding plus numpy (not the code under test),
and the comparison of a preview with it, as grey levels at the preview's size.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut

MIN_CORRELATION = 0.9


def _first(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, MultiValue | list):
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def reference_frame(ds: Dataset, frame: int) -> Image.Image:
    """The frame rendered with pydicom's full-dataset decoding plus numpy, independently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = ds.pixel_array  # all frames, pydicom's default YBR -> RGB conversion
    if int(ds.get("NumberOfFrames") or 1) > 1:
        arr = arr[frame]
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds).astype(float)
        top = 255.0 if rgb.dtype == np.uint8 or rgb.max() <= 255 else 65535.0
        return Image.fromarray((rgb / top * 255).astype(np.uint8), "RGB")
    if arr.ndim == 3:
        top = 2 ** int(ds.BitsStored) - 1
        return Image.fromarray((arr.astype(float) / top * 255).astype(np.uint8), "RGB")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = arr.astype(float) * slope + intercept
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width and width > 0:
        low, high = center - width / 2, center + width / 2
    else:
        low, high = np.percentile(values, [1, 99])
    high = max(high, low + 1)
    grey = np.clip((values - low) / (high - low), 0, 1) * 255
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey.astype(np.uint8), "L")


def as_grey(picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(picture.convert("L").resize(size, Image.Resampling.BILINEAR), float)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def decode(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def read_reference(path_or_bytes) -> Dataset:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(source)
