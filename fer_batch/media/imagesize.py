"""Width and height of an image file from its header, without decoding it.

Why: OpenCV decodes a whole image before anyone can see its size, and a 780 KB PNG can hold 16000x16000 pixels
(768 MB as BGR, several GB on the way). Reading the size from the first bytes lets ``--max-pixels`` refuse such
a file before anything that size is allocated. The size is looked for wherever the header keeps it (a JPEG's
frame header may follow megabytes of EXIF and ICC segments, a TIFF's first directory may sit at the end of the
file), reading only the headers. Formats not recognised here return None, and the prober refuses such an image
rather than decode it blind.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

HEAD_BYTES = 1 << 16  # fixed-offset headers (PNG, GIF, BMP, WebP, PNM) lie within the first bytes
MAX_SEGMENTS = 100_000  # JPEG segments or JP2 boxes walked before giving up on a file that never says its size


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, GIF, WebP, TIFF, PNM or JPEG 2000 file, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            for magic, parse in PARSERS:
                if head.startswith(magic):
                    return parse(head)
            for magic, walk in WALKERS:
                if head.startswith(magic):
                    return walk(f)
    except (OSError, struct.error, ValueError, IndexError):
        return None
    return None


def is_known_image(path: Path) -> bool:
    """The file starts like one of the formats ``image_size`` reads (its size may still be missing: damaged)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head.startswith(m) for m, _ in PARSERS) or any(head.startswith(m) for m, _ in WALKERS)


def _read(f: BinaryIO, at: int, n: int) -> bytes:
    f.seek(at)
    b = f.read(n)
    if len(b) != n:
        raise ValueError("header cut short")
    return b


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


def _jpeg(f: BinaryIO) -> tuple[int, int] | None:
    """Walk the segments from the start to the first start-of-frame header, however far the file puts it."""
    i = 2
    for _ in range(MAX_SEGMENTS):
        b = _read(f, i, 2)
        if b[0] != 0xFF:
            i += 1
            continue
        marker = b[1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame header
            h, w = struct.unpack(">HH", _read(f, i + 5, 4))
            return w, h
        if marker == 0xDA:  # start of scan before any frame header: not a JPEG we can size
            return None
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack(">H", _read(f, i + 2, 2))[0]
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


def _tiff(f: BinaryIO) -> tuple[int, int] | None:
    """The first image directory's width and length, wherever its offset points."""
    b = _read(f, 0, 8)
    order = "<" if b[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", b[4:8])
    (count,) = struct.unpack(order + "H", _read(f, ifd, 2))
    entries = _read(f, ifd + 2, 12 * count)
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind = struct.unpack(order + "HH", entries[12 * k : 12 * k + 4])
        if tag in (256, 257):
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, entries[12 * k + 8 : 12 * k + 8 + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if 256 in found and 257 in found else None


def _jp2(f: BinaryIO) -> tuple[int, int] | None:
    """JPEG 2000 (JP2 boxes): the image header box ``ihdr`` inside the header box ``jp2h``."""
    i, end = 0, None
    for _ in range(MAX_SEGMENTS):
        if end is not None and i >= end:
            return None
        size, kind = struct.unpack(">I4s", _read(f, i, 8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", _read(f, i + 8, 8))[0], 16
        if kind == b"jp2h":
            i, end = i + header, (i + size if size else None)  # its boxes follow its own header
            continue
        if kind == b"ihdr":
            h, w = struct.unpack(">II", _read(f, i + header, 8))
            return w, h
        if size == 0:  # the last box, to the end of the file
            return None
        i += size
    return None


def _j2k(b: bytes) -> tuple[int, int] | None:
    """A bare JPEG 2000 codestream: the SIZ segment right after the start marker."""
    xsiz, ysiz, x0, y0 = struct.unpack(">IIII", b[8:24])
    return xsiz - x0, ysiz - y0


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
    (b"BM", _bmp),
    (b"GIF87a", _gif),
    (b"GIF89a", _gif),
    (b"RIFF", _webp),
    (b"\xff\x4f\xff\x51", _j2k),
    *[(f"P{k}".encode(), _pnm) for k in range(1, 7)],
]
# formats whose size may lie anywhere in the file: read by seeking from header to header
WALKERS: list[tuple[bytes, Callable[[BinaryIO], tuple[int, int] | None]]] = [
    (b"\xff\xd8", _jpeg),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _jp2),
]
