"""Zip-based formats (DOCX, PPTX, XLSX) checked before any parser unpacks them.

A decompression bomb is a small file that unpacks to gigabytes. The zip's directory says how large every
member is once unpacked; Python's zipfile never unpacks a member past that size (a member that claims less
than it holds fails its CRC check), so checking the declared sizes before reading bounds what a parser can
unpack: the members' total, how many there are, and each large member's compression ratio.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from core.documents.extracted import Unreadable
from core.documents.formats import DocumentFormat

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a password-protected Office file, or an old binary one
RATIO_CHECKED_FROM = 1024 * 1024  # members smaller than this unpack to little whatever their ratio

# The part each format cannot do without: a zip without it is no such document.
REQUIRED = {
    DocumentFormat.DOCX: "word/document.xml",
    DocumentFormat.PPTX: "ppt/presentation.xml",
    DocumentFormat.XLSX: "xl/workbook.xml",
}


@dataclass(frozen=True, slots=True)
class PackageLimits:
    max_unpacked_bytes: int = 50 * 1024 * 1024
    max_members: int = 5_000
    max_ratio: int = 200


def check_package(data: bytes, kind: DocumentFormat, limits: PackageLimits) -> None:
    """Raise Unreadable unless ``data`` is a zip holding ``kind`` that unpacks within ``limits``."""
    if data.startswith(OLE_MAGIC):
        raise Unreadable(
            "it is password-protected (or an old-format Office file); save it without a password and "
            "in the current format"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise Unreadable(f"it is damaged or not {kind.label}") from None
    if len(members) > limits.max_members:
        raise Unreadable(f"it holds {len(members):,} parts; at most {limits.max_members:,} are read")
    total = sum(member.file_size for member in members)
    if total > limits.max_unpacked_bytes:
        raise Unreadable(
            f"it unpacks to {_mb(total)}; files that unpack to at most {_mb(limits.max_unpacked_bytes)} "
            "are read"
        )
    for member in members:
        if member.file_size >= RATIO_CHECKED_FROM and (
            member.compress_size == 0 or member.file_size / member.compress_size > limits.max_ratio
        ):
            raise Unreadable(
                f"one of its parts unpacks to {_mb(member.file_size)} from "
                f"{member.compress_size:,} bytes, which looks like a decompression bomb"
            )
    if REQUIRED[kind] not in {member.filename for member in members}:
        raise Unreadable(f"it is damaged or not {kind.label}")


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"
