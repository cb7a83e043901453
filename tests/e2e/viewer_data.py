"""Studies for the viewer's browser tests, written with pydicom from its test files under
fresh UIDs: a JPEG-LS MR and a deflated OT (transfer syntaxes dwv cannot read, transcoded
in the browser), CT series of several slices whose pixels differ visibly per slice (one of
them RLE-compressed), an MR
series whose first file ends in megabytes of zero bytes, and (on its own) a big CT series."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

JPEG_LS_NAME = "Jpegls^Viewer"
DEFLATED_NAME = "Deflated^Viewer"
SLICES_NAME = "Slices^Viewer"
SLICES = 5
RLE_NAME = "Rle^Viewer"
RLE_SLICES = 4
TRAILER_NAME = "Trailer^Viewer"
# Zero bytes after the last data element of the trailer series' first file: what a scanner or
# an anonymiser left in the real MR series of issue 14 (pydicom reads such files fine).
TRAILER_BYTES = 2_400_000
BIG_NAME = "Big^Viewer"


def _fresh(ds, name: str, study_uid: str, series_uid: str) -> None:
    from pydicom.uid import generate_uid

    ds.PatientName = name
    ds.PatientID = name.split("^")[0].upper()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _single(test_file: str, name: str) -> bytes:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = dcmread(get_testdata_file(test_file))
    _fresh(ds, name, generate_uid(), generate_uid())
    return _bytes(ds)


def _place_slice(ds, index: int, description: str, spacing: float = 5.0) -> None:
    """Slice ``index`` of a series: its number, and its position ``spacing`` mm further along
    the slice normal than the file's own."""
    ds.InstanceNumber = index + 1
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y, round(z + spacing * index, 3)]
    ds.SliceLocation = round(z + spacing * index, 3)
    ds.SeriesDescription = description


def slice_series(slices: int = SLICES, name: str = SLICES_NAME, rle: bool = False) -> list[bytes]:
    """CT_small as ``slices`` slices 5 mm apart; each slice has a bright bar at another height
    (and the image shifted), so every slice renders differently. With ``rle``, RLE Lossless
    (decoded in dwv's worker, not in the page)."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(slices):
        ds = dcmread(get_testdata_file("CT_small.dcm"))
        _fresh(ds, name, study, series)
        pixels = np.roll(ds.pixel_array, 12 * i, axis=1)
        top = 10 + 22 * i
        pixels[top:top + 12, :] = pixels.max()
        ds.PixelData = pixels.astype(ds.pixel_array.dtype).tobytes()
        _place_slice(ds, i, f"{slices} slices" + (" RLE" if rle else ""))
        if rle:
            from pydicom.uid import RLELossless

            ds.compress(RLELossless)
        out.append(_bytes(ds))
    return out


def trailer_series(slices: int = 3, test_file: str = "MR_small.dcm",
                   name: str = TRAILER_NAME) -> list[bytes]:
    """An MR series of ``slices`` slices 5 mm apart whose first file carries TRAILER_BYTES zero
    bytes after its pixel data."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(slices):
        ds = dcmread(get_testdata_file(test_file))
        _fresh(ds, name, study, series)
        _place_slice(ds, i, "Zero trailer")
        out.append(_bytes(ds))
    out[0] += bytes(TRAILER_BYTES)
    return out


def big_ct_series(slices: int = 200, name: str = BIG_NAME) -> list[bytes]:
    """A CT series of ``slices`` 512x512 slices (pydicom-data's 693_UNCI.dcm, 526 kB each, its
    pixels shifted per slice), 1 mm apart: about 105 MB for 200."""
    import copy

    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = dcmread(get_testdata_file("693_UNCI.dcm"))
    pixels = base.pixel_array
    study, series = generate_uid(), generate_uid()
    x, y, z = (float(v) for v in base.ImagePositionPatient)
    out = []
    for i in range(slices):
        ds = copy.deepcopy(base)
        _fresh(ds, name, study, series)
        ds.PixelData = np.roll(pixels, 2 * i, axis=0).tobytes()
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, round(z + 1.0 * i, 3)]
        ds.SliceLocation = round(z + 1.0 * i, 3)
        ds.SeriesDescription = f"{slices} slices"
        out.append(_bytes(ds))
    return out


def series_zip(path: Path, files: list[bytes], folder: str = "series") -> tuple[Path, int]:
    """One series as an archive (stored: the pixels of synthetic series barely compress)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i, data in enumerate(files):
            archive.writestr(f"{folder}/{i + 1:04d}.dcm", data)
    return path, len(files)


def viewer_zip(path: Path) -> tuple[Path, int]:
    """The archive and how many instances it holds (five studies)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLSLossless

    jls = _single("MR_small_jpeg_ls_lossless.dcm", JPEG_LS_NAME)
    dfl = _single("image_dfl.dcm", DEFLATED_NAME)
    assert f"{JPEGLSLossless}".encode() in jls[:400]
    assert f"{DeflatedExplicitVRLittleEndian}".encode() in dfl[:400]
    members = [("viewer/jpegls.dcm", jls), ("viewer/deflated.dcm", dfl)]
    members += [(f"viewer/slices/{i + 1}.dcm", b) for i, b in enumerate(slice_series())]
    members += [(f"viewer/rle/{i + 1}.dcm", b)
                for i, b in enumerate(slice_series(RLE_SLICES, RLE_NAME, rle=True))]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        # Stored: deflated, the zero trailer trips ingest's compression-ratio (bomb) check.
        for i, data in enumerate(trailer := trailer_series()):
            archive.writestr(f"viewer/trailer/{i + 1}.dcm", data, zipfile.ZIP_STORED)
    return path, len(members) + len(trailer)
