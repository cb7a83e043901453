"""The ZIP format's numbers (PKWARE APPNOTE): compression methods, flag bits, extra field
ids and the layouts and signatures of its records, shared by the modules that read
archives (:mod:`pacs.zip.directory`, :mod:`pacs.zip.members`, :mod:`pacs.zip.stream`).
"""

from __future__ import annotations

import struct

STORED, DEFLATED, AES = 0, 8, 99
FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
DOS_DIRECTORY = 0x10
ZIP64_EXTRA = 0x0001
AES_EXTRA = 0x9901
U16_MAX, U32_MAX = 0xFFFF, 0xFFFFFFFF

EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes, then the archive comment
EOCD_SIG = b"PK\x05\x06"
EOCD_MAX_COMMENT = 0xFFFF
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes, just before the EOCD
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
ZIP64_EOCD_SIG = b"PK\x06\x06"
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
CENTRAL_SIG = b"PK\x01\x02"
LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
LOCAL_SIG = b"PK\x03\x04"
DESCRIPTOR_SIG = b"PK\x07\x08"
