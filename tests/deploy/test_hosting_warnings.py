"""The deploy step warns when the built web client is missing or lacks the GPL-3.0 source
link (dwv is in the bundle)."""

from __future__ import annotations

from pathlib import Path

from deploy.__main__ import SOURCE_OFFER, hosting_warnings


def _site(tmp_path: Path, notice: str | None) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html>")
    if notice is not None:
        (tmp_path / "third-party-licences.txt").write_text(notice)
    return tmp_path


def test_missing_build_is_reported(tmp_path):
    [warning] = hosting_warnings(tmp_path)

    assert "index.html is missing" in warning


def test_notice_without_source_link_is_reported(tmp_path):
    site = _site(tmp_path, "dwv 0.36.4 GPL-3.0\nIts complete corresponding source is available "
                           "from the operator of this site on request.")

    [warning] = hosting_warnings(site)

    assert "PACS_SOURCE_URL" in warning and "GPL-3.0" in warning


def test_missing_notice_is_reported(tmp_path):
    assert "PACS_SOURCE_URL" in hosting_warnings(_site(tmp_path, None))[0]


def test_notice_with_source_link_passes(tmp_path):
    site = _site(tmp_path, f"dwv 0.36.4 GPL-3.0\n{SOURCE_OFFER}https://example.org/pacs-web.tar.gz")

    assert hosting_warnings(site) == []
