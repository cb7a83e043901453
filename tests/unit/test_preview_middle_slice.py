"""The slice a series preview shows (``pacs.indexing.preview.middle_instance``): the middle
one by position along the slice normal (oblique stacks too), falling back to the slice
location and then the instance number.
"""

from __future__ import annotations

import random

import pytest
from pacs.indexing.preview import middle_instance

from tests.dicom_builders import read_path
from tests.dicom_corpus import corpus


def slice_fields(number: int, z: float | None, *, orientation=None, location=None) -> dict:
    return {
        "SOPInstanceUID": f"1.2.{number}",
        "InstanceNumber": number,
        "ImagePositionPatient": None if z is None else [0.0, 0.0, z],
        "ImageOrientationPatient": orientation or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        "SliceLocation": location,
    }


def test_middle_instance_sorts_by_position_along_the_normal() -> None:
    # Arrange: instance numbers run against the geometry, input shuffled
    slices = [slice_fields(number=10 - i, z=i * 2.5) for i in range(9)]
    shuffled = slices[:]
    random.Random(3).shuffle(shuffled)

    # Act
    middle = middle_instance(shuffled)

    # Assert
    assert middle["ImagePositionPatient"][2] == 10.0  # z values 0..20 -> 10
    assert middle["InstanceNumber"] == 6


def test_middle_instance_handles_oblique_slices() -> None:
    # Arrange: sagittal-oblique stack stepping along x; z goes the other way
    orientation = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # normal = (-1, 0, 0)
    slices = []
    for i in range(5):
        fields = slice_fields(number=i + 1, z=None, orientation=orientation)
        fields["ImagePositionPatient"] = [float(i * 3), 0.0, float(-i)]
        slices.append(fields)

    # Act
    middle = middle_instance(list(reversed(slices)))

    # Assert
    assert middle["ImagePositionPatient"][0] == 6.0


def test_middle_instance_falls_back_to_slice_location_then_instance_number() -> None:
    # Arrange
    by_location = [slice_fields(number=n, z=None, location=float(-n * 5)) for n in range(1, 8)]
    by_number = [slice_fields(number=n, z=None) for n in (7, 3, 5, 1, 2, 6, 4)]
    one_missing = by_location[:]
    one_missing[0] = {**one_missing[0], "SliceLocation": None}

    # Act / Assert
    assert middle_instance(by_location)["SliceLocation"] == -20.0
    assert middle_instance(by_number)["InstanceNumber"] == 4
    assert middle_instance(one_missing)["InstanceNumber"] == 4
    assert middle_instance([by_number[0]]) is by_number[0]
    with pytest.raises(ValueError):
        middle_instance([])


def test_middle_instance_accepts_header_fields() -> None:
    # Arrange: the CT slices of pydicom's DICOMDIR test tree
    paths = sorted(p for name, p in corpus().items() if "/CT5N/" in name)
    fields = [read_path(p).fields for p in paths]
    positions = sorted(f["ImagePositionPatient"][2] for f in fields)

    # Act
    middle = middle_instance(fields)

    # Assert
    assert len(fields) == 5
    assert middle["ImagePositionPatient"][2] == positions[2]
