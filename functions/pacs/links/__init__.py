"""Viewer access, for ``functions/sign_link`` (manifests, shares, access history).

Owns: V4 signed URLs (``signing``), the owner's viewer manifests and series pages
(``manifests``), share links (``shares``) and the append-only access history
(``access_log``).
"""
