"""API keys and DICOMweb credentials (issue 15).

``api_keys``: the owner's named, scoped, expiring keys for tools that cannot sign in to
Firebase (created on a recent sign-in, shown once, stored as a keyed hash, listed, revoked,
suspended by a restriction, deleted by an erasure). ``access``: who a DICOMweb request is
(a Firebase ID token, an API key or a share's view), as one :class:`access.Credential` with
the scope and the study limit the DICOMweb code applies, and the daily use records.
``cors``: the preflight and response headers for the Hosting origins.
"""
