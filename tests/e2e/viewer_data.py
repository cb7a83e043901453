"""Studies for the viewer's browser tests, written with pydicom from its test files under
fresh UIDs: a JPEG-LS MR and a deflated OT (transfer syntaxes dwv cannot read, transcoded
in the browser) and a CT series of several slices whose pixels differ visibly per slice."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

JPEG_LS_NAME = "Jpegls^Viewer"
DEFLATED_NAME = "Deflated^Viewer"
SLICES_NAME = "Slices^Viewer"
SLICES = 5


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


def slice_series() -> list[bytes]:
    """CT_small as SLICES slices 5 mm apart; each slice has a bright bar at another height
    (and the image shifted), so every slice renders differently."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(SLICES):
        ds = dcmread(get_testdata_file("CT_small.dcm"))
        _fresh(ds, SLICES_NAME, study, series)
        pixels = np.roll(ds.pixel_array, 12 * i, axis=1)
        top = 10 + 22 * i
        pixels[top:top + 12, :] = pixels.max()
        ds.PixelData = pixels.astype(ds.pixel_array.dtype).tobytes()
        ds.InstanceNumber = i + 1
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, round(z + 5.0 * i, 3)]
        ds.SliceLocation = round(z + 5.0 * i, 3)
        ds.SeriesDescription = "Five slices"
        out.append(_bytes(ds))
    return out


def viewer_zip(path: Path) -> tuple[Path, int]:
    """The archive and how many instances it holds (three studies)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGLSLossless

    jls = _single("MR_small_jpeg_ls_lossless.dcm", JPEG_LS_NAME)
    dfl = _single("image_dfl.dcm", DEFLATED_NAME)
    assert f"{JPEGLSLossless}".encode() in jls[:400]
    assert f"{DeflatedExplicitVRLittleEndian}".encode() in dfl[:400]
    members = [("viewer/jpegls.dcm", jls), ("viewer/deflated.dcm", dfl)]
    members += [(f"viewer/slices/{i + 1}.dcm", b) for i, b in enumerate(slice_series())]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path, len(members)
