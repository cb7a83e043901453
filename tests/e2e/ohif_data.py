"""Studies for the OHIF browser tests, written with pydicom from its test files under fresh
UIDs: an MR series of real slices (the ten frames of pydicom's ``emri_small.dcm``, an
anonymised 3 T T1 head acquisition, each a classic MR Image Storage instance with the header
of ``MR_small.dcm``: its 0.3125 mm PixelSpacing, orientation and position, the slices
SLICE_GAP mm apart)."""

from __future__ import annotations

import io

MR_NAME = "Mr^Ohif"
MR_PATIENT_ID = "MROHIF"
MR_SLICES = 10
MR_SPACING = 0.3125  # MR_small.dcm's PixelSpacing (mm), both directions
SLICE_GAP = 1.2  # emri_small.dcm's SpacingBetweenSlices (mm)


def mr_series(name: str = MR_NAME, patient_id: str = MR_PATIENT_ID) -> list[bytes]:
    """The MR series as MR_SLICES files (64 x 64, signed 16 bit, native)."""
    import copy

    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    frames = dcmread(get_testdata_file("emri_small.dcm")).pixel_array
    base = dcmread(get_testdata_file("MR_small.dcm"))
    assert frames.shape == (MR_SLICES, base.Rows, base.Columns)
    assert [float(v) for v in base.PixelSpacing] == [MR_SPACING, MR_SPACING]
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    x, y, z = (float(v) for v in base.ImagePositionPatient)
    out = []
    for i, frame in enumerate(frames):
        ds = copy.deepcopy(base)
        ds.PatientName, ds.PatientID = name, patient_id
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame_of_reference
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDescription, ds.SeriesDescription = "OHIF MR", f"T1 {MR_SLICES} slices"
        ds.SeriesNumber, ds.InstanceNumber = 301, i + 1
        ds.ImagePositionPatient = [x, y, round(z + SLICE_GAP * i, 3)]
        ds.SliceLocation = round(z + SLICE_GAP * i, 3)
        ds.SpacingBetweenSlices = SLICE_GAP
        ds.PixelData = frame.astype("<i2").tobytes()
        ds.WindowCenter, ds.WindowWidth = 234, 468  # the frames' values are 0-467
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out
