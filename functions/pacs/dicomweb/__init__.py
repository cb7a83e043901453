"""DICOMweb (PS3.18) for each user's own studies: the ``dicomweb`` function's domain code.

``qido`` parses QIDO-RS query parameters into the search of :mod:`pacs.studies` (reused, not
copied) plus the checks the index cannot express, and runs the study, series and instance
searches; ``attributes`` renders study, series and instance documents as
``application/dicom+json``; ``wado`` streams a stored instance as ``multipart/related``.
Every answer is scoped to the caller: another user's UIDs behave exactly like unknown ones.
See docs/dicomweb.md for what is implemented and what is not yet.
"""
