"""``pacs-admin``: the operator's command for requests that arrive by email (see
:mod:`pacs.privacy.operators`). It runs the domain code of ``functions/pacs`` directly, with
the operator's Google credentials (Application Default Credentials) against a project, or
against the local cloud's emulators."""
