"""Folders of small real DICOM files for the folder upload tests: one CT series of 8×8
slices (about 1 KB a file), written with pydicom under fresh UIDs."""

from __future__ import annotations

import io
from pathlib import Path


def series_files(count: int, patient: str = "Folder^Test") -> list[bytes]:
    """``count`` CT slices of one new study and series, 1 mm apart."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = patient, patient.split("^")[0].upper()
        ds.Modality, ds.StudyDate, ds.InstanceNumber = "CT", "20240102", i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = (np.arange(64, dtype=np.uint16) * (i % 50 + 1)).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def write_series(folder: Path, count: int, patient: str = "Folder^Test") -> list[Path]:
    """The series as ``folder/IM00001.dcm`` …; returns the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(series_files(count, patient), start=1):
        path = folder / f"IM{i:05d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths
