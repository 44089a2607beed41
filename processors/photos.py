"""Visit photos with Pillow, bytes in and bytes out: check an upload is a picture, read its EXIF time
and place, hash it perceptually, and stamp a watermark on a derived JPEG copy.

Safety: the format is decided by the bytes (Pillow's signature sniffing, limited to JPEG, PNG, WebP
and HEIF when a HEIF plugin is registered), never by the file name; a name or content type that
claims another format is refused, so a PNG or a text file sent as ``.jpg`` does not pass. The pixel
count is checked from the header, before a single pixel is decoded, so a tiny file declaring a
100,000 × 100,000 image (a decompression bomb) is refused without allocating it.

Perceptual hash: the DCT pHash (Zauner, "Implementation and Benchmarking of Perceptual Image Hash
Functions", 2010): grey 32×32 thumbnail, 2-D DCT-II, the 8×8 lowest frequencies without the DC term
compared with their median, 64 bits. Chosen over dHash because JPEG re-encoding is itself a
quantisation of high DCT frequencies and resizing removes high frequencies too, so a hash made of the
lowest frequencies is insensitive to exactly what a re-saved or scaled copy changes, while dHash
compares neighbouring pixels of a 9×8 thumbnail and flips bits in flat regions where re-encoding
noise decides the sign. Two different scenes share about half their bits (distance ~32).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

# Phone cameras reach 50 MP (8160 × 6120); anything bigger is not a visit photo.
MAX_PIXELS = 60_000_000
# Pillow's own bomb guard, as a second line behind our header check.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
HASH_BITS = 64
# Re-saved or rescaled copies of one picture stay within a few bits (the tests see 0-4); distinct
# scenes sit around 32. 10 is the threshold Zauner's benchmark suggests for pHash.
REUSE_MAX_DISTANCE = 10
_MASK = (1 << HASH_BITS) - 1

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}
_CLAIMS = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG", "image/png": "PNG",
           "image/webp": "WEBP", "image/heic": "HEIF", "image/heif": "HEIF", ".jpg": "JPEG",
           ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF"}

# EXIF tags (EXIF 2.32): the Exif and GPS sub-IFD pointers, and the tags read from them.
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


class PhotoRefused(ValueError):
    """``too_large``: more pixels than MAX_PIXELS; ``not_image``: anything else we will not take."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Exif:
    # Aware when the camera wrote OffsetTimeOriginal; otherwise naive local time of the camera's clock.
    taken_at: datetime | None
    latitude: float | None
    longitude: float | None


@dataclass(frozen=True, slots=True)
class Photo:
    """A checked upload: ``image`` is decoded and turned upright by its EXIF orientation."""

    image: Image.Image
    format: str
    content_type: str
    width: int
    height: int
    exif: Exif


def _claimed_format(declared: Sequence[str | None]) -> str | None:
    for claim in declared:
        if not claim:
            continue
        text = claim.strip().lower()
        key = text if "/" in text else "." + text.rsplit(".", 1)[-1] if "." in text else text
        if key in _CLAIMS:
            return _CLAIMS[key]
    return None


def open_photo(data: bytes, *declared: str | None, max_pixels: int = MAX_PIXELS) -> Photo:
    """The upload as a Photo, or PhotoRefused. ``declared``: the part's content type and file name;
    an unknown or generic claim (application/octet-stream) defers to the bytes."""
    Image.init()
    allowed = [f for f in CONTENT_TYPES if f in Image.OPEN]
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; our own check refuses below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data), formats=allowed)
    except Image.DecompressionBombError as exc:
        raise PhotoRefused("too_large", f"the image has more than {max_pixels:,} pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PhotoRefused("not_image", "not a JPEG, PNG or WebP image") from exc
    fmt = image.format or ""
    claimed = _claimed_format(declared)
    if claimed is not None and claimed != fmt:
        raise PhotoRefused("not_image", f"the file claims to be {claimed} but holds {fmt}")
    width, height = image.size
    if width * height > max_pixels:  # from the header: nothing is decoded yet
        raise PhotoRefused("too_large", f"{width} × {height} is more than {max_pixels:,} pixels")
    try:
        image.load()
        exif = read_exif(image)
        upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise PhotoRefused("too_large", f"the image has more than {max_pixels:,} pixels") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise PhotoRefused("not_image", f"the {fmt} image is damaged: {exc}") from exc
    return Photo(upright, fmt, CONTENT_TYPES[fmt], upright.width, upright.height, exif)


def _rational(value: Any) -> float:
    return float(value)


def _degrees(dms: Any, ref: Any) -> float | None:
    try:
        d, m, s = (_rational(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60 + s / 3600
    if not math.isfinite(value):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -value if str(ref).strip().upper() in ("S", "W") else value


def _taken_at(text: Any, offset: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.strptime(text.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and blanks are what cameras write for "unknown"
    if isinstance(offset, str) and len(offset.strip("\x00 ")) == 6:
        o = offset.strip("\x00 ")
        try:
            sign = -1 if o[0] == "-" else 1
            delta = timedelta(hours=int(o[1:3]), minutes=int(o[4:6]))
            return when.replace(tzinfo=timezone(sign * delta))
        except (ValueError, IndexError):
            return when
    return when


def read_exif(image: Image.Image) -> Exif:
    exif = image.getexif()
    sub = exif.get_ifd(_EXIF_IFD)
    gps = exif.get_ifd(_GPS_IFD)
    lat = _degrees(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF)) if _GPS_LAT in gps else None
    lon = _degrees(gps.get(_GPS_LON), gps.get(_GPS_LON_REF)) if _GPS_LON in gps else None
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    return Exif(_taken_at(sub.get(_DATETIME_ORIGINAL), sub.get(_OFFSET_TIME_ORIGINAL)), lat, lon)


def _dct_matrix(n: int, keep: int) -> list[list[float]]:
    """The first ``keep`` rows of the orthonormal n-point DCT-II matrix."""
    rows = []
    for k in range(keep):
        scale = math.sqrt((1 if k == 0 else 2) / n)
        rows.append([scale * math.cos(math.pi * (2 * i + 1) * k / (2 * n)) for i in range(n)])
    return rows


_DCT = _dct_matrix(32, 8)


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash, unsigned."""
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    px = list(grey.tobytes())  # mode L: one byte per pixel, row by row
    rows = [px[r * 32:(r + 1) * 32] for r in range(32)]
    # C = D · P · Dᵀ restricted to the 8 × 8 low-frequency corner.
    half = [[sum(d[i] * rows[i][c] for i in range(32)) for c in range(32)] for d in _DCT]
    low = [sum(h[c] * d[c] for c in range(32)) for h in half for d in _DCT]
    median = sorted(low[1:])[len(low[1:]) // 2]  # without DC: it is only the mean brightness
    bits = 0
    for value in low:
        bits = (bits << 1) | (value > median)
    return bits


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & _MASK).bit_count()


def to_signed(value: int) -> int:
    """For a bigint column: the same 64 bits as a two's-complement number."""
    value &= _MASK
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value & _MASK


def stamp_lines(at: datetime, latitude: float | None, longitude: float | None, place_source: str,
                customer: str, rep: str) -> list[str]:
    """The watermark's text: ``at`` already in the rep's zone, so the stamp reads as their clock."""
    place = (f"{latitude:.5f}, {longitude:.5f} ({place_source})"
             if latitude is not None and longitude is not None else "position unknown")
    return [f"{at:%Y-%m-%d %H:%M:%S} {at.tzname() or ''}".rstrip(), place, f"Customer: {customer}",
            f"Rep: {rep}"]


def watermark(image: Image.Image, lines: Sequence[str], quality: int = 88) -> bytes:
    """A JPEG copy of ``image`` (same size) with ``lines`` in a dark band along its bottom edge.
    The text height follows the shorter side so the stamp stays legible on a thumbnail and on a
    50 MP original alike."""
    copy = image.convert("RGB")
    size = max(10, min(copy.width, copy.height) // 40)
    font = ImageFont.load_default(size=size)
    pad = max(2, size // 3)
    band = len(lines) * (size + pad) + pad
    top = max(0, copy.height - band)
    overlay = Image.new("RGBA", copy.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, top, copy.width, copy.height), fill=(0, 0, 0, 150))
    for n, line in enumerate(lines):
        draw.text((pad, top + pad + n * (size + pad)), line, font=font, fill=(255, 255, 255, 255))
    stamped = Image.alpha_composite(copy.convert("RGBA"), overlay).convert("RGB")
    out = BytesIO()
    stamped.save(out, "JPEG", quality=quality)  # no EXIF: the pixels are upright already
    return out.getvalue()
