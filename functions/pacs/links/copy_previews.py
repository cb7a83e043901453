"""Series previews of a de-identified copy (:mod:`pacs.links.deidentified`), so its recipient
sees thumbnails as for a full share. Each is rendered by the preview renderer from the
copy's own middle instance (de-identified bytes, never the original object) at the copy's
last run, and written create-only beside the copy, under its prefix: it goes with the copy
(revocation, expiry, study deletion, erasure) and counts toward the owner's quota."""

from __future__ import annotations

from typing import Any

from pacs import ids
from pacs.dicom import header as dicom_header


def write_previews(clients: Any, copy_prefix: str, docs: list[dict[str, Any]]
                   ) -> tuple[dict[str, dict[str, str]], int]:
    """Render and store one preview per series of the copy (``docs``: its instance
    documents). Returns ``{series_id: {object, generation, media_type}}`` and the bytes
    written. A series whose middle image cannot be rendered simply has no preview; a
    preview an earlier delivery of the run wrote stands (create-only)."""
    from google.api_core.exceptions import PreconditionFailed

    from pacs.indexing import preview  # pixel codecs load only where previews are built

    settings = clients.settings
    bucket = clients.storage.bucket(settings.derived_bucket)
    by_series: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        if doc.get("Rows") and doc.get("Columns"):
            by_series.setdefault(doc["series_id"], []).append(doc)
    previews: dict[str, dict[str, str]] = {}
    written = 0
    for series_id, images in sorted(by_series.items()):
        middle = preview.middle_instance(images)
        source = bucket.blob(middle["object"], generation=int(middle["generation"]))
        try:
            # A seekable reader: only the header and one frame are fetched.
            with source.open("rb", chunk_size=1024**2) as reader:
                header = dicom_header.read_header(
                    reader, int(middle["size"]), max_header_bytes=settings.header_max_bytes,
                    inflate_max_bytes=settings.inflate_max_bytes)
                reader.seek(0)
                image = preview.render_preview(reader, header, size=256,
                                               inflate_max_bytes=settings.inflate_max_bytes)
        except (preview.PreviewFailed, dicom_header.HeaderRejected):
            continue
        media_type = preview.preview_media_type(image)
        out = bucket.blob(f"{copy_prefix}preview-{series_id}."
                          f"{ids.PREVIEW_EXTENSIONS[media_type]}")
        try:
            out.upload_from_string(image, content_type=media_type, if_generation_match=0)
            written += len(image)
        except PreconditionFailed:
            out.reload()
        previews[series_id] = {"object": out.name, "generation": str(out.generation),
                               "media_type": media_type}
    return previews, written
