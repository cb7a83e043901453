"""The ``pacs`` command line: the user's client of the PACS."""
