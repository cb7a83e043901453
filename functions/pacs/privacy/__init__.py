"""Data-protection rights, for ``functions/privacy_requests`` (``privacy_requests``,
``run_privacy_job``).

Owns: the profile and its 18+ attestation, rectification and restriction (``profile``),
analytics consent (``consent``), request records and their statuses (``requests``), the
export and erasure jobs (``jobs``, ``export``, ``erasure``) and the registry of every place
personal data is written (``personal_data``).
"""
