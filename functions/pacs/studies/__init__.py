"""The caller's studies, for ``functions/studies`` (search, get, delete).

Owns: search filters (``filters``), the Firestore query and its cursors (``query``),
search and reading one study (``search``) and deleting a study everywhere it lives
(``deletion``).
"""
