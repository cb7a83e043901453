"""DICOM Part 10 files from untrusted uploads, as a pure library (no cloud clients).

Owns: bounded reading of headers (``bounded``, ``header``), Deflated Explicit VR Little
Endian (``deflate``), structural checks (``structure``), the searchable fields of a header
(``fields``), how reading fails (``errors``) and the AES-GCM seal that carries a parsed header
in an object's metadata (``seal``). Imports nothing of ``pacs`` but ``pacs.errors``.
"""
