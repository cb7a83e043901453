"""Domain package shared by every PACS function.

A newcomer finds any behaviour in two hops: the function folder (``functions/<name>/``,
one thin ``main.py`` per folder) → its subpackage here. Cloud clients are passed in, so
the logic is tested against the emulators without patching globals.

Layers, lowest first. A module imports only from its own layer or lower ones (within a
layer, never in a circle); ``tests/unit/test_architecture.py`` reads every import from the
source and fails on a cycle, an upward import, or a library importing anything of the cloud.

1. **core**: ``settings``, ``clients``, ``auth``, ``http``, ``errors``, ``log_events``,
   ``ids``, ``events``, ``paging``, ``guard``, ``results`` (per-file upload results, written
   by ingest and read by settle, deletion and retention), ``json_values`` (Firestore values
   as JSON), ``locations`` (deleting a location's objects, shared by erasure and deletion),
   ``markers`` (the erasure marker every writer of user data checks with its write).
2. **libraries** ``dicom`` (bounded header reading, the seal) and ``zip`` (safe archives):
   pure, importing nothing of the cloud and of the core only ``pacs.errors``.
3. **indexing** (``extract_metadata``): the study/series/instance documents, the search
   keys stored on them, the erasure marker, settle and previews.
4. **links** (``sign_link``): signing, manifests, shares, access history.
5. **privacy** (``privacy_requests``): profile (18+ attestation), consent, requests, export,
   erasure, the personal-data registry.
6. **keys** (``privacy_requests``' ``/keys`` routes, and the ``dicomweb`` credentials): API
   keys, the DICOMweb credential of a request (ID token, API key or share view), CORS.
7. **ingest** (``upload_handler``): starting uploads (the profile's 18+ check), the pipeline,
   canonical instance storage.
8. **studies** (``studies``): search filters and query, search, study deletion (which
   reads upload records).
9. **retention** (``retention``): the scheduled jobs, over every domain below.
10. **dicomweb** (``dicomweb``): DICOMweb (QIDO-RS, WADO-RS) over the caller's own
   studies, reusing the search of ``studies``.
"""

# The allowed order, read by tests/unit/test_architecture.py: a subpackage (or core module)
# may import from its own layer and the layers before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("settings", "clients", "auth", "http", "errors", "log_events", "ids", "events", "paging",
     "guard", "results", "json_values", "locations",
     "markers"),
    ("dicom", "zip"),
    ("indexing",),
    ("links",),
    ("privacy",),
    ("keys",),
    ("ingest",),
    ("studies",),
    ("retention",),
    ("dicomweb",),
)
# What a library (pure code) may import from the rest of ``pacs``.
LIBRARIES = ("dicom", "zip")
LIBRARY_MAY_IMPORT = ("errors",)
