"""Indexing, for ``functions/extract_metadata`` (``on_instance_finalized``, ``settle_series``).

Owns: the study, series and instance documents and the erasure marker (``catalog``), the
search keys stored on each study when it is indexed (``search_keys``), settling a series
(``settle``: counts, the study's summary) and its preview image (``preview``).
"""
