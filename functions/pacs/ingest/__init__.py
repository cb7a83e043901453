"""Ingest, for ``functions/upload_handler`` (``create_upload``, ``on_upload_finalized``,
``continue_upload``).

Owns: starting an upload (``uploads``: profile, quota, rate, the resumable session),
processing a finalized upload (``pipeline``: magic bytes, single files and checkpointed
archives, per-file results) and storing one canonical instance (``instance_store``: preamble
zeroed, keyed name, sealed header, create-only write).
"""
