"""Image type and size read from the bytes themselves, for files built here byte by byte."""

from __future__ import annotations

import struct
import time

import pytest

from core.llm.images import ImageInfo, sniff_image
from tests.fakes.openai_api import png_bytes


def gif(width: int, height: int) -> bytes:
    # Header, logical screen descriptor (size, flags: global colour table of 2 entries), the colour table,
    # one 1x1 image with a minimal LZW stream, trailer.
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
        + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
        + b"\x02\x02\x44\x01\x00"
        + b"\x3b"
    )


def segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment: 0xFF, marker, big-endian length (payload + the 2 length bytes), payload."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width: int, height: int, *, sof: int = 0xC0, before_sof: bytes = b"") -> bytes:
    soi = b"\xff\xd8"
    app0 = segment(0xE0, b"JFIF\x00" + b"\x01\x01" + b"\x00" + struct.pack(">HH", 1, 1) + b"\x00\x00")
    # SOF: precision 8, height, width, 3 components (id, sampling, quantisation table).
    frame = segment(
        sof, struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00" + b"\x02\x11\x01" + b"\x03\x11\x01"
    )
    return soi + app0 + before_sof + frame + b"\xff\xd9"


def riff_webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_vp8x(width: int, height: int) -> bytes:
    # flags (1 byte) + reserved (3) + canvas width-1 (24-bit LE) + canvas height-1 (24-bit LE)
    payload = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff_webp(b"VP8X", payload)


def webp_vp8l(width: int, height: int) -> bytes:
    # signature 0x2f, then 14 bits width-1, 14 bits height-1, alpha bit, 3 version bits (LE)
    bits = (width - 1) | ((height - 1) << 14)
    return riff_webp(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8)


def webp_vp8(width: int, height: int) -> bytes:
    # frame tag (3 bytes), start code 9d 01 2a, 14-bit width and height with 2 scale bits on top
    payload = b"\x50\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width | 0x4000, height | 0x8000)
    return riff_webp(b"VP8 ", payload + b"\x00" * 10)


def test_png() -> None:
    assert sniff_image(png_bytes(640, 480)) == ImageInfo("image/png", 640, 480)
    assert sniff_image(png_bytes(1, 70_000)) == ImageInfo("image/png", 1, 70_000)


def test_gif() -> None:
    data = gif(300, 150)

    assert sniff_image(data) == ImageInfo("image/gif", 300, 150)
    assert sniff_image(b"GIF87a" + data[6:]) == ImageInfo("image/gif", 300, 150)


def test_baseline_jpeg() -> None:
    assert sniff_image(jpeg(640, 480)) == ImageInfo("image/jpeg", 640, 480)


def test_progressive_jpeg() -> None:
    assert sniff_image(jpeg(1920, 1080, sof=0xC2)) == ImageInfo("image/jpeg", 1920, 1080)


def test_jpeg_size_is_read_past_tables_that_are_not_frames() -> None:
    # DHT (0xC4) lies in the SOF marker range but is a Huffman table: its bytes are not a size.
    dqt = segment(0xDB, b"\x00" + bytes(range(64)))
    dht = segment(0xC4, b"\x00" + b"\x00" * 4 + b"\x07\x05" + b"\x00" * 10 + b"\x01")

    assert sniff_image(jpeg(800, 600, before_sof=dqt + dht)) == ImageInfo("image/jpeg", 800, 600)


def test_jpeg_with_fill_bytes_before_a_marker() -> None:
    data = jpeg(320, 240)
    soi, rest = data[:2], data[2:]

    assert sniff_image(soi + b"\xff\xff" + rest) == ImageInfo("image/jpeg", 320, 240)


def test_webp_extended() -> None:
    assert sniff_image(webp_vp8x(1920, 1080)) == ImageInfo("image/webp", 1920, 1080)
    # VP8X sizes are 24-bit: beyond the 14 bits of the simple formats.
    assert sniff_image(webp_vp8x(20_000, 3)) == ImageInfo("image/webp", 20_000, 3)


def test_webp_lossless() -> None:
    assert sniff_image(webp_vp8l(400, 300)) == ImageInfo("image/webp", 400, 300)


def test_webp_lossy_ignores_scale_bits() -> None:
    assert sniff_image(webp_vp8(640, 360)) == ImageInfo("image/webp", 640, 360)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"Hello, this is plain text and certainly not an image.\n" * 3, id="text"),
        pytest.param(b'{"type": "image", "width": 640}', id="json"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", id="pdf"),
        pytest.param(png_bytes(640, 480)[:20], id="png-cut-inside-size"),
        pytest.param(png_bytes(640, 480)[:8], id="png-signature-only"),
        pytest.param(b"GIF89a\x2c\x01", id="gif-cut-inside-size"),
        pytest.param(jpeg(640, 480)[:22], id="jpeg-cut-before-frame"),
        pytest.param(riff_webp(b"VP8X", b"\x10\x00"), id="webp-cut-inside-header"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24, id="wav"),
    ],
)
def test_not_an_image(data: bytes) -> None:
    assert sniff_image(data) is None


@pytest.mark.parametrize(
    "filler",
    [b"\x00", b"\xff\xd0", b"\xff"],  # bytes between markers, restart markers, fill bytes
)
def test_sniffing_a_huge_jpeg_lookalike_is_bounded_work(filler: bytes) -> None:
    """20 MB that start like a JPEG and never reach a frame header: refused in milliseconds, where the
    byte-by-byte walk took seconds of the event loop."""
    data = b"\xff\xd8\xff" + filler * (20_000_000 // len(filler))
    started = time.perf_counter()
    assert sniff_image(data) is None
    assert time.perf_counter() - started < 0.5
