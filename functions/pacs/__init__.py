"""Domain package shared by every PACS function.

Each module holds one concern; entry points in ``functions/<name>/main.py`` stay thin
and pass cloud clients in, so the logic here is tested against the emulators without
patching globals.
"""
