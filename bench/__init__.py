"""``make bench``: ingest, memory and search figures against anchors (Orthanc, the
single-process parse ceiling, and the local cloud's own write ceiling)."""
