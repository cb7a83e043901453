"""Uploaded ZIP archives, inspected and streamed without trusting them (a pure library).

Owns: the format's numbers (``format``), the central directory and its limits
(``directory``), member naming and kinds (``members``), bounded member streaming with CRC
checks (``stream``), the entry point :func:`pacs.zip.safety.open_archive` (``safety``) and
the rejections (``errors``). Imports nothing of ``pacs`` but ``pacs.errors``.
"""
