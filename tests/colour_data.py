"""Real colour DICOM files from pydicom's test data, for the colour preview tests
(tests/integration/test_colour_previews.py, tests/e2e/test_web_colour_preview.py)."""

from __future__ import annotations

import io
import zipfile

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

# pydicom test file -> (photometric interpretation, least mean |R - G| of the preview)
COLOUR_FILES = {
    "SC_rgb.dcm": ("RGB", 20.0),
    "US1_J2KR.dcm": ("YBR_RCT", 1.0),
    "SC_ybr_full_422_uncompressed.dcm": ("YBR_FULL_422", 20.0),
}


def colour_zip() -> bytes:
    """The three files, each its own study (SC_rgb and SC_ybr share UIDs in pydicom's data,
    so every file gets fresh ones; pixel data and transfer syntax are kept)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (photometric, _) in COLOUR_FILES.items():
            ds = pydicom.dcmread(get_testdata_file(name))
            assert ds.PhotometricInterpretation == photometric
            ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyDescription = name
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            archive.writestr(f"colour/{name}", out.getvalue())
    return buf.getvalue()
