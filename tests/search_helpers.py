"""The search tests' data set and oracle (``tests/integration/test_search*.py``): a few
hundred generated studies of several users, and the expected answers from a separate, plain
re-implementation of the filters (:func:`oracle`).

The studies are written with the same document builders ingest uses
(``catalog.study_document``, ``search_keys.with_modalities`` as settle does).
``bench/search_bench.py`` seeds its studies with :func:`seed` too.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pacs import ids
from pacs.indexing import catalog, search_keys

from tests.localcloud_fixture import LocalCloud, User

NAMES = ["Müller^Jürgen", "Mueller^Anna", "Smith^John^^Dr.", "Smithson^Jane", "O'Brien^Seán",
         "García Márquez^José", "Nguyễn^Văn An", "山田^太郎=ヤマダ^タロウ",
         "Doe^Jane", "Øster^Åse", "Jürgens^Paul", "Ng^Li", "", "MÜLLER-LÜDENSCHEIDT^Hans"]

DESCRIPTIONS = ["CT Chest w/o contrast", "MR Brain", "Abdomen US", "Chest X-Ray",
                "PET-CT whole body", "Knee MRI left", "", None, "CHEST abdomen pelvis"]

MODALITIES = ["CT", "MR", "US", "CR", "PT", "SR"]



@dataclass
class Study:
    key: str
    uid: str
    fields: dict[str, Any]
    modalities: list[str]


@dataclass
class Dataset:
    users: dict[str, User]
    studies: list[Study] = field(default_factory=list)

    def of(self, name: str) -> list[Study]:
        uid = self.users[name].uid
        return [s for s in self.studies if s.uid == uid]


# --- The oracle: the filters re-implemented plainly ---------------------------------------

def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept).casefold()


def folded_words(text: str | None) -> list[str]:
    return [w for w in re.split(r"[\W_]+", fold(text or "")) if w]


def _date(value: str) -> str:
    return value.replace("-", "")


def oracle(dataset: Dataset, uid: str, filters: dict[str, str]) -> list[str]:
    """Study keys of ``uid`` matching ``filters``, newest first (ties by key, descending)."""
    out = []
    for s in dataset.studies:
        f = s.fields
        if s.uid != uid:
            continue
        if "name" in filters:
            tokens = folded_words(f["PatientName"])
            typed = folded_words(filters["name"])
            if not all(any(t.startswith(w) for t in tokens) for w in typed):
                continue
        if "patient_id" in filters and fold(f["PatientID"]) != fold(filters["patient_id"]):
            continue
        if "accession" in filters and fold(f["AccessionNumber"]) != fold(filters["accession"]):
            continue
        if "modality" in filters and filters["modality"].upper() not in s.modalities:
            continue
        if "keyword" in filters:
            have = {w for w in folded_words(f["StudyDescription"]) if len(w) > 1}
            if not {w for w in folded_words(filters["keyword"]) if len(w) > 1} <= have:
                continue
        low, high = filters.get("date_from"), filters.get("date_to")
        if "date" in filters:
            dicom_range = re.fullmatch(r"(\d{8})?-(\d{8})?", filters["date"])
            low, high = dicom_range.groups() if dicom_range else (filters["date"],) * 2
        if low or high:
            if not f["StudyDate"]:
                continue
            if low and f["StudyDate"] < _date(low) or high and f["StudyDate"] > _date(high):
                continue
        out.append(s)
    def sort(s: Study) -> tuple[str, str]:
        date, time = s.fields["StudyDate"], s.fields["StudyTime"]
        return (date + time.ljust(6, "0") if date else "00000000"), s.key

    return [s.key for s in sorted(out, key=sort, reverse=True)]


# --- Seeding ------------------------------------------------------------------------------

def _fields(rng: random.Random, n: int, user_index: int) -> tuple[dict[str, Any], list[str]]:
    undated = rng.random() < 0.1
    date = "" if undated else (f"{rng.randint(2015, 2024)}{rng.randint(1, 12):02d}"
                               f"{rng.randint(1, 28):02d}")
    if n % 17 == 0 and not undated:
        date = "20200615"  # several studies on one date: ties broken by key
    time = "" if rng.random() < 0.3 else f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}00"
    name_index = rng.randrange(len(NAMES))
    mods = sorted(rng.sample(MODALITIES, rng.randint(1, 3))) if rng.random() > 0.05 else []
    fields = {
        "PatientName": NAMES[name_index],
        # The same patient ids for every user: a search must still show only the caller's.
        "PatientID": f"pid-{name_index:02d}" if name_index % 3 else f"PÄT{name_index}",
        "PatientBirthDate": "19700101", "PatientSex": rng.choice(["F", "M", "O"]),
        "StudyInstanceUID": f"1.2.826.0.1.{user_index}.{n}",
        "StudyDate": date, "StudyTime": time,
        "AccessionNumber": f"ACC{n % 40:04d}",
        "StudyID": str(n), "StudyDescription": rng.choice(DESCRIPTIONS),
        "ReferringPhysicianName": "", "ModalitiesInStudy": mods,
    }
    return fields, mods


def seed(cloud: LocalCloud, user: User, user_index: int, count: int,
         rng: random.Random) -> list[Study]:
    """Write ``count`` studies of ``user`` as ingest and settle would leave them."""
    fs = cloud.clients().firestore
    key = cloud.settings().hash_key
    now = datetime.now(UTC)
    studies, batch = [], fs.batch()
    for n in range(count):
        fields, mods = _fields(rng, n, user_index)
        study_key = ids.study_key(key, user.uid, fields["StudyInstanceUID"])
        doc = catalog.study_document(fields, user.uid, now)
        series_key = ids.series_key(key, user.uid, fields["StudyInstanceUID"] + ".1")
        doc.update(modalities=mods, ModalitiesInStudy=mods, series_count=len(mods),
                   instance_count=3 * len(mods), total_bytes=1000 * len(mods),
                   search=search_keys.with_modalities(doc["search"], mods),
                   preview={"status": "ready", "generation": "1", "instance_key": "i" * 32,
                            "object": ids.preview_object(user.uid, study_key, series_key)})
        batch.set(catalog.study_ref(fs, study_key), doc)
        studies.append(Study(study_key, user.uid, fields, mods))
        if n % 100 == 99:
            batch.commit()
            batch = fs.batch()
    batch.commit()
    return studies


def seed_dataset(cloud: LocalCloud) -> Dataset:
    """Four users: alice with 210 studies, bob 120, carol 60, dave none."""
    rng = random.Random(20240131)
    users = {name: cloud.create_user() for name in ("alice", "bob", "carol", "dave")}
    data = Dataset(users)
    for index, (name, count) in enumerate((("alice", 210), ("bob", 120), ("carol", 60))):
        data.studies += seed(cloud, users[name], index, count, rng)
    return data
