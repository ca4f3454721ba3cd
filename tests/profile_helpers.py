"""Images and starters for the profile tests: real files made with Pillow, a crafted bomb."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (640, 480),
                color: tuple[int, ...] = (200, 40, 40), mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (800, 600), orientation: int | None = None) -> bytes:
    """A JPEG carrying EXIF metadata (camera, GPS position, optionally an orientation)."""
    img = Image.new("RGB", size, (30, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "Secret editor 1.0"  # Software
    exif[0x8825] = {1: "N", 2: (59.0, 54.0, 50.0), 3: "E", 4: (10.0, 45.0, 9.0)}  # GPS IFD
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG that claims `width`×`height` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * 4096, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def multipart(data: bytes, filename: str, content_type: str) -> tuple[bytes, str]:
    """Encode one file field `file` (the test client would spool a large body to a temp file
    it never closes)."""
    boundary = "lastmile-test-boundary-7d1f"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def publish_starter(key: str = "welcome"):
    """Create and publish one starter template from templates/emails/; return its version."""
    from journeys import services as journeys
    from journeys.cli import load_starters

    entry = next(e for e in load_starters() if e["key"] == key)
    version = journeys.create_template(f"{entry['name']} {key}", entry["subject"],
                                       entry.get("preheader", ""), entry["mjml"],
                                       entry["slots"])
    return journeys.publish_template(version.template_id)
