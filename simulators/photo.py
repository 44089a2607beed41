"""Photos a rep's phone takes at a customer: a seeded picture with the EXIF a phone camera writes
(local time taken with its UTC offset, GPS position), so the server's photo checks see what a real
visit photo gives them."""

from __future__ import annotations

import random
from datetime import datetime
from io import BytesIO

from PIL import Image, ImageDraw


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)


def visit_photo(seed: str, taken: datetime, latitude: float, longitude: float,
                size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG of shelves in colours of their own per ``seed`` (so two visits' photos are not near
    duplicates), taken at ``taken`` (aware; written as the phone's local time and offset)."""
    rnd = random.Random(seed)
    image = Image.new("RGB", size, tuple(rnd.randrange(120, 256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        draw.rectangle((x, y, x + rnd.randrange(40, 260), y + rnd.randrange(30, 200)),
                       fill=tuple(rnd.randrange(256) for _ in range(3)))
    exif = Image.Exif()
    offset = taken.utcoffset()
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        exif.get_ifd(0x8769)[0x9011] = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    exif.get_ifd(0x8825).update({1: "N" if latitude >= 0 else "S", 2: _dms(latitude),
                                 3: "E" if longitude >= 0 else "W", 4: _dms(longitude)})
    out = BytesIO()
    image.save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()
