"""Privacy domain pieces without the cloud: due dates, status transitions, the recent
sign-in check, consent state, JSON conversion, the registry's shape, routes, and the
streamed archive on an unseekable sink."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pacs import json_values
from pacs.auth import Caller
from pacs.errors import BadRequest, NotFound
from pacs.privacy import consent, erasure, export_runs, personal_data
from pacs.privacy import requests as privacy_requests
from pacs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def settings(**env: str) -> Settings:
    return Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-unit", **env})


def test_due_date_is_thirty_days_after_receipt():
    assert privacy_requests.due_date(NOW, settings()) == NOW + timedelta(days=30)
    ten_days = settings(PACS_PRIVACY_RESPONSE_DAYS="10")
    assert privacy_requests.due_date(NOW, ten_days) == NOW + timedelta(days=10)


def test_transitions_only_move_forward_and_finals_are_final():
    assert privacy_requests.TRANSITIONS == {"received": ("in_progress", "rejected"),
                                   "in_progress": ("completed", "rejected")}
    for final in privacy_requests.FINAL:
        assert final not in privacy_requests.TRANSITIONS


@pytest.mark.parametrize(("age", "recent"), [(0, True), (299, True), (300, True), (301, False),
                                             (3600, False)])
def test_recent_sign_in_uses_auth_time_and_the_setting(age, recent):
    caller = Caller("u1", {"auth_time": int(NOW.timestamp()) - age})
    assert privacy_requests.is_recent_sign_in(caller, settings(), NOW) is recent


def test_recent_sign_in_window_is_configurable_and_missing_auth_time_is_stale():
    caller = Caller("u1", {"auth_time": int(NOW.timestamp()) - 20})
    ten_seconds = settings(PACS_RECENT_SIGNIN_SECONDS="10")
    assert privacy_requests.is_recent_sign_in(caller, ten_seconds, NOW) is False
    assert privacy_requests.is_recent_sign_in(Caller("u1", {}), settings(), NOW) is False


def test_plain_converts_firestore_values():
    value = {"t": NOW, "b": b"\x00\x01", "n": [NOW, {"x": 1}], "s": "x"}
    assert json_values.plain(value) == {"t": "2026-03-01T12:00:00Z", "b": "AAE=",
                                    "n": ["2026-03-01T12:00:00Z", {"x": 1}], "s": "x"}


@pytest.mark.parametrize(("profile_doc", "expected"), [
    (None, ("not_given", False, False)),
    ({"consent": {"analytics": True, "policy_version": "v2"}}, ("granted", False, True)),
    ({"consent": {"analytics": True, "policy_version": "v1"}}, ("granted", True, False)),
    ({"consent": {"analytics": False, "policy_version": "v1"}}, ("withdrawn", False, False)),
])
def test_consent_state_and_renewal_after_a_policy_bump(profile_doc, expected):
    state = consent.state(profile_doc, "v2")
    assert (state["analytics"], state["needs_renewal"], state["active"]) == expected
    assert state["current_policy_version"] == "v2"


def test_registry_shape():
    names = [loc.name for loc in personal_data.LOCATIONS]
    assert len(names) == len(set(names))
    assert names[0] == "shares"  # links die first
    assert names[-1] == personal_data.REQUESTS  # the erasure's own record goes last
    assert names.index("auth_user") > names.index("profile")
    for loc in personal_data.LOCATIONS:
        assert loc.kind in ("firestore", "storage", "auth")
        if loc.kind == "storage":
            assert loc.prefix.endswith("/") and "{uid}" in loc.prefix
            assert loc.bucket_role in ("uploads", "instances", "derived")
        if loc.kind == "firestore":
            assert loc.collection_group
    groups = personal_data.collection_groups()
    assert {"users", "uploads", "files", "studies", "series", "instances", "shares", "access",
            "deletions", "privacy_requests", "consent", "history", "erasures",
            "analytics_daily"} <= groups
    kept = {k.collection_group for k in personal_data.KEPT}
    assert kept.isdisjoint({loc.collection_group for loc in personal_data.LOCATIONS})


def test_storage_patterns_match_every_users_objects_only_under_their_prefix():
    s = settings()
    patterns = personal_data.storage_prefix_patterns(s)
    def match(bucket, name):
        return [loc for b, rx, loc in patterns if b == bucket and rx.match(name)]
    assert match(s.instances_bucket, "abc/" + "0" * 32 + "/" + "1" * 32 + ".dcm") == [
        "instance_objects"]
    assert match(s.derived_bucket, "previews/abc/s/x.png") == ["preview_objects"]
    assert match(s.derived_bucket, "exports/abc/r.zip") == ["exports"]
    assert match(s.uploads_bucket, "abc/123") == ["upload_objects"]
    assert match(s.derived_bucket, "elsewhere/abc/r.zip") == []


@pytest.mark.parametrize("uid", ["", "a/b", "../x", "a b", "x" * 129])
def test_unsafe_uids_are_refused(uid):
    with pytest.raises(ValueError):
        personal_data.Subject(None, uid)  # type: ignore[arg-type]


def test_receipt_holds_no_uid_and_says_what_is_kept():
    doc = {"status": "completed", "reason": "user_request", "requested_at": NOW,
           "completed_at": NOW, "counts": {"studies": 2}, "steps": {"studies": "done"},
           "locations": ["studies", "auth_user"], "failed": [],
           "residual_copies_expire_by": NOW + timedelta(days=7),
           "expire_at": NOW + timedelta(days=1095)}
    receipt = erasure.public_receipt("f" * 32, doc)
    assert receipt["deleted"] == {"studies": 2}
    assert receipt["locations"] == {"studies": "done", "auth_user": "pending"}
    assert receipt["residual_copies_expire_by"] == "2026-03-08T12:00:00Z"
    assert {k["legal_basis"] for k in receipt["kept"]}
    assert "pseudonymous" in receipt["pseudonymous"]


@pytest.fixture
def main(monkeypatch):
    """The entry-point module, imported as a local process would (its production guard runs
    at import and must see a demo project)."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unit")
    monkeypatch.delenv("K_SERVICE", raising=False)
    return _load_main()


def _load_main():
    spec = importlib.util.spec_from_file_location(
        "privacy_requests_main", ROOT / "functions" / "privacy_requests" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/profile", ("profile_get", None)),
    ("PATCH", "/api/privacy/profile", ("rectify", None)),
    ("POST", "/requests", ("requests_submit", None)),
    ("GET", "/requests/abc123", ("request_get", "abc123")),
    ("GET", "/receipts/" + "a" * 32, ("receipt", "a" * 32)),
    ("POST", "/analytics", ("analytics", None)),
    ("POST", "/consent", ("consent_set", None)),
])
def test_routes(main, method, path, expected):
    assert main._route(method, path) == expected


def test_unknown_route_and_wrong_method(main):
    with pytest.raises(NotFound):
        main._route("GET", "/nope")
    with pytest.raises(BadRequest):
        main._route("DELETE", "/profile")


# --- The archive, streamed ------------------------------------------------------------------

class UnseekableSink(io.RawIOBase):
    """What a resumable upload looks like to zipfile: write-only, no seek."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += bytes(data)
        return len(data)


@dataclass
class FakeSnap:
    path: str
    data: dict[str, Any]

    @property
    def reference(self):
        return type("Ref", (), {"path": self.path})()

    def to_dict(self):
        return dict(self.data)


class FakeBlob:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data

    def open(self, mode: str, chunk_size: int | None = None):
        assert mode == "rb"
        return io.BytesIO(self.data)


def _fake_locations(uid: str):
    docs = [FakeSnap(f"shares/s{i}", {"owner": uid, "token_hash": "secret", "n": i,
                                      "at": NOW}) for i in range(3)]
    docs.append(FakeSnap("shares/other", {"owner": "someone-else", "n": 99}))
    blobs = [FakeBlob(f"{uid}/up{i}", bytes([i]) * (1000 + i)) for i in range(2)]
    return (
        personal_data.Location("shares", "firestore", "", lambda s: iter(docs), lambda s: 0,
                               collection_group="shares"),
        personal_data.Location("upload_objects", "storage", "", lambda s: iter(blobs),
                               lambda s: 0, bucket_role="uploads", prefix="{uid}/"),
        personal_data.Location("exports", "storage", "", lambda s: iter([]), lambda s: 0,
                               bucket_role="derived", prefix="exports/{uid}/", export=False),
    ), blobs


class MemoryRun:
    """The storage side of :mod:`pacs.privacy.export_runs` in memory: parts are appended to
    ``partial`` as the compose does; ``finish`` makes the archive."""

    request_id = "req1"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.archive = b""

    def writer(self, what: str):
        run = self

        class Writer(UnseekableSink):
            def close(self) -> None:
                run.objects[what] = bytes(self.buffer)

        return Writer()

    def put(self, what: str, data: bytes) -> None:
        self.objects[what] = data

    def get(self, what: str) -> bytes:
        return self.objects[what]

    def append(self, part: str, first: bool) -> None:
        self.objects["partial"] = (b"" if first else self.objects["partial"]) + \
            self.objects.pop(part)

    def finish(self, tail: str) -> None:
        self.archive = self.objects["partial"] + self.objects[tail]


def test_an_archive_written_over_several_runs_is_one_zip_that_reads_back(tmp_path):
    # Arrange: a budget spent at once, so each run writes one location or one object
    uid = "user1"
    locations, blobs = _fake_locations(uid)
    subject = personal_data.Subject(None, uid)  # type: ignore[arg-type]
    run, state = MemoryRun(), export_runs.fresh_state()
    # Act
    runs = 1
    while not export_runs.write_part(subject, run, state, NOW, lambda: True, locations):
        runs += 1
    summary = export_runs.finish_archive(subject, run, state, NOW)
    data = run.archive
    # Assert: several parts, one archive that zipfile and unzip read whole
    # shares; up0; up1; the last run finds only a location that is not exported
    assert runs == state["parts"] == 4, state
    archive = tmp_path / "export.zip"
    archive.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[0] == "README.txt"
        assert {"firestore/shares.jsonl", "uploads/up0", "uploads/up1", "checksums.sha256",
                "manifest.json"} <= set(names)
        lines = [json.loads(x) for x in zf.read("firestore/shares.jsonl").splitlines()]
        assert [line["data"]["n"] for line in lines] == [0, 1, 2]  # the other owner's is out
        assert all("token_hash" not in line["data"] for line in lines)
        assert lines[0]["data"]["at"] == "2026-03-01T12:00:00Z"
        for blob in blobs:
            assert zf.read("uploads/" + blob.name.split("/")[1]) == blob.data
        sums = dict(reversed(line.split("  ")) for line in
                    zf.read("checksums.sha256").decode().splitlines())
        assert sums["uploads/up0"] == hashlib.sha256(blobs[0].data).hexdigest()
        assert sums["uploads/up1"] == hashlib.sha256(blobs[1].data).hexdigest()
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["counts"] == {"shares": 3, "upload_objects": 2} and manifest["runs"] == 4
    assert summary["files"] == 2 and summary["documents"] == 3
    # Streamed: every member used a data descriptor (nothing was ever rewound).
    assert all(info.flag_bits & 0x08 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())


def test_every_registry_location_is_listed_once():
    names = [loc.name for loc in personal_data.LOCATIONS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
