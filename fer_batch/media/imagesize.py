"""Width and height of an image file from its header, without decoding it.

Why: OpenCV decodes a whole image before anyone can see its size, and a 780 KB PNG can hold 16000x16000 pixels
(768 MB as BGR, several GB on the way). Reading the size from the first bytes lets ``--max-pixels`` refuse such
a file before anything that size is allocated. Formats not recognised here return None (OpenCV decides).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

HEAD_BYTES = 1 << 16  # JPEG markers before the frame header (EXIF, ICC) fit in this for real cameras


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, GIF, WebP, TIFF or PNM file, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    for magic, parse in PARSERS:
        if head.startswith(magic):
            try:
                return parse(head)
            except (struct.error, ValueError, IndexError):
                return None
    return None


def _png(b: bytes) -> tuple[int, int]:
    w, h = struct.unpack(">II", b[16:24])
    return w, h


def _gif(b: bytes) -> tuple[int, int]:
    w, h = struct.unpack("<HH", b[6:10])
    return w, h


def _bmp(b: bytes) -> tuple[int, int]:
    if struct.unpack("<I", b[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", b[18:22])
        return w, h
    w, h = struct.unpack("<ii", b[18:26])
    return abs(w), abs(h)


def _jpeg(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            i += 1
            continue
        marker = b[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame header
            h, w = struct.unpack(">HH", b[i + 5 : i + 9])
            return w, h
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", b[i + 2 : i + 4])[0]
    return None


def _webp(b: bytes) -> tuple[int, int] | None:
    if b[8:12] != b"WEBP":
        return None
    kind = b[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    if kind == b"VP8L":
        bits = int.from_bytes(b[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _tiff(b: bytes) -> tuple[int, int] | None:
    order = "<" if b[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", b[4:8])
    (count,) = struct.unpack(order + "H", b[ifd : ifd + 2])
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind = struct.unpack(order + "HH", b[ifd + 2 + 12 * k : ifd + 6 + 12 * k])
        value_at = ifd + 10 + 12 * k
        if tag in (256, 257):
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, b[value_at : value_at + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if 256 in found and 257 in found else None


def _pnm(b: bytes) -> tuple[int, int] | None:
    words: list[int] = []
    for line in b[2:512].split(b"\n"):
        line = line.split(b"#")[0]
        words += [int(x) for x in line.split()]
        if len(words) >= 2:
            return words[0], words[1]
    return None


PARSERS: list[tuple[bytes, Callable[[bytes], tuple[int, int] | None]]] = [
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"\xff\xd8", _jpeg),
    (b"BM", _bmp),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
    (b"RIFF", _webp),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
    *[(f"P{k}".encode(), _pnm) for k in range(1, 7)],
]
