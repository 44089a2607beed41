"""Visit photos with real images drawn by Pillow: format checks, bombs, EXIF, pHash, watermark."""

from __future__ import annotations

import math
import random
import resource
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO

import pytest
from PIL import Image, ImageDraw

from processors.photos import (
    MAX_PIXELS,
    REUSE_MAX_DISTANCE,
    PhotoRefused,
    hamming,
    open_photo,
    phash,
    stamp_lines,
    to_signed,
    to_unsigned,
    watermark,
)


def scene(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A picture of overlapping coloured ellipses; each seed draws a different one."""
    rnd = random.Random(seed)
    image = Image.new("RGB", size, (rnd.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        draw.ellipse((x, y, x + rnd.randrange(50, 300), y + rnd.randrange(50, 300)),
                     fill=tuple(rnd.randrange(256) for _ in range(3)))
    return image


def encoded(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def with_exif(image: Image.Image, taken: str | None, offset: str | None = None,
              gps: tuple[str, tuple[float, float, float], str, tuple[float, float, float]] | None = None,
              orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
        if offset is not None:
            exif.get_ifd(0x8769)[0x9011] = offset
    if gps is not None:
        exif.get_ifd(0x8825).update({1: gps[0], 2: gps[1], 3: gps[2], 4: gps[3]})
    return encoded(image, "JPEG", quality=90, exif=exif)


def naive_phash(image: Image.Image) -> int:
    """pHash written straight from the DCT-II definition (no matrices), to check the module's."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    px = [[grey.getpixel((x, y)) for x in range(32)] for y in range(32)]

    def alpha(k: int) -> float:
        return math.sqrt(1 / 32) if k == 0 else math.sqrt(2 / 32)

    coeffs = []
    for u in range(8):  # vertical frequency (rows)
        for v in range(8):
            total = sum(px[y][x] * math.cos(math.pi * (2 * y + 1) * u / 64)
                        * math.cos(math.pi * (2 * x + 1) * v / 64) for y in range(32) for x in range(32))
            coeffs.append(alpha(u) * alpha(v) * total)
    median = sorted(coeffs[1:])[31]
    return int("".join("1" if c > median else "0" for c in coeffs), 2)


def test_phash_survives_reencoding_and_resizing_but_tells_pictures_apart() -> None:
    original = scene(1)
    h = phash(original)
    assert h == naive_phash(original)
    copy = open_photo(encoded(original.resize((400, 300)), quality=60)).image
    assert hamming(h, phash(copy)) <= 4 <= REUSE_MAX_DISTANCE
    for seed in (2, 3, 4, 5):
        assert hamming(h, phash(scene(seed))) > REUSE_MAX_DISTANCE * 2


def test_hash_bits_round_trip_through_a_signed_bigint() -> None:
    top = 1 << 63 | 5
    assert to_signed(top) == top - 2**64
    assert to_unsigned(to_signed(top)) == top
    assert hamming(0, (1 << 64) - 1) == 64


def test_exif_time_offset_and_gps_read_back() -> None:
    # 52°05'30" N, 4°10'00" W: 52.091666..., -4.166666...
    data = with_exif(scene(1), "2026:10:05 09:30:15", "+02:00",
                     ("N", (52.0, 5.0, 30.0), "W", (4.0, 10.0, 0.0)))
    photo = open_photo(data, "image/jpeg", "IMG_1.JPG")
    assert photo.exif.taken_at == datetime(2026, 10, 5, 7, 30, 15, tzinfo=UTC)
    assert photo.exif.taken_at.utcoffset() == timedelta(hours=2)
    assert photo.exif.latitude == pytest.approx(52 + 5 / 60 + 30 / 3600)
    assert photo.exif.longitude == pytest.approx(-(4 + 10 / 60))
    naive = open_photo(with_exif(scene(1), "2026:10:05 09:30:15")).exif
    assert naive.taken_at == datetime(2026, 10, 5, 9, 30, 15) and naive.latitude is None
    bare = open_photo(encoded(scene(1))).exif
    assert (bare.taken_at, bare.latitude, bare.longitude) == (None, None, None)


def test_exif_orientation_is_applied_and_format_comes_from_the_bytes() -> None:
    # Orientation 6: the camera was turned; shown upright the 200 × 100 picture is 100 × 200.
    photo = open_photo(with_exif(scene(1, (200, 100)), None, orientation=6), "application/octet-stream")
    assert (photo.width, photo.height) == (100, 200) and photo.content_type == "image/jpeg"
    png = open_photo(encoded(scene(1), "PNG"), "image/png", "shop.png")
    assert png.format == "PNG" and png.content_type == "image/png"
    webp = open_photo(encoded(scene(1), "WEBP"), None, "shop.webp")
    assert webp.content_type == "image/webp"


@pytest.mark.parametrize(("data", "declared"), [
    (encoded(scene(1), "PNG"), ("image/jpeg", "shop.jpg")),  # a PNG calling itself a JPEG
    (encoded(scene(1), "PNG"), (None, "shop.jpg")),
    (b"not a picture at all, just text\n" * 20, ("image/jpeg", "shop.jpg")),
    (encoded(scene(1), "GIF"), ("image/gif", "shop.gif")),  # an image, but not a photo format we take
    (encoded(scene(1))[:2000], ("image/jpeg", "cut.jpg")),  # truncated
    (b"", ("image/jpeg", "empty.jpg")),
])
def test_non_images_and_disguised_files_are_refused(data: bytes, declared: tuple[str | None, str]) -> None:
    with pytest.raises(PhotoRefused) as refused:
        open_photo(data, *declared)
    assert refused.value.kind == "not_image"


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring width × height RGB, one tiny IDAT, IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9_000, 100_000])  # 81 MP (over ours, under Pillow's 2x), 10,000 MP
def test_decompression_bomb_refused_from_its_header(side: int) -> None:
    bomb = _png_header_only(side, side)
    assert len(bomb) < 200 and side * side > MAX_PIXELS
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PhotoRefused) as refused:
        open_photo(bomb, "image/png", "bomb.png")
    # Decoding would have failed on the 16-byte IDAT as "damaged" (not_image): too_large proves the
    # refusal came from the header; 81 MP RGB would have taken 243 MB (ru_maxrss is in KiB).
    assert refused.value.kind == "too_large"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_watermark_is_a_same_size_jpeg_that_differs_in_its_band_only() -> None:
    original = scene(7, (1200, 900))
    kept = original.copy()
    at = datetime(2026, 10, 5, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    lines = stamp_lines(at, 52.1, 4.3, "check-in", "Bakker & Zn", "Anna")
    assert lines[0] == "2026-10-05 09:30:00 UTC+02:00" and lines[1] == "52.10000, 4.30000 (check-in)"
    stamped = Image.open(BytesIO(watermark(original, lines)))
    assert stamped.format == "JPEG" and stamped.size == original.size
    assert original.tobytes() == kept.tobytes()  # the original is never touched
    grey_stamped, grey_original = stamped.convert("L"), original.convert("L")

    def mean_difference(box: tuple[int, int, int, int]) -> float:
        a, b = grey_stamped.crop(box).tobytes(), grey_original.crop(box).tobytes()
        return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)

    # Text of 900 // 40 = 22 px with 7 px gaps, 4 lines: the band is the bottom 123 px.
    assert mean_difference((0, 900 - 100, 1200, 900)) > 20
    assert mean_difference((0, 0, 1200, 600)) < 3  # JPEG noise only
