"""Uploaded profile images: checked by content, resized, re-encoded, stored by content hash.

An upload is decoded with Pillow (PNG, JPEG, WebP or GIF only, whatever the file is called),
refused before decoding when it is too large in bytes or in pixels (decompression bombs),
turned upright by its EXIF orientation, resized to what an email shows (a square photo, a
logo that fits 600×200), and re-encoded from its pixels alone, so no metadata (EXIF with GPS
positions, comments, colour profiles) survives. The result is stored under its SHA-256, in
MEDIA_DIR (served at /media/<name> by accounts.routes) or an S3-compatible bucket, and
addressed by a stable public URL that mail clients load.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import boto3
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import TooLarge, ValidationError
from core.i18n import _

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# Larger than any phone camera's picture; refused before a single pixel is decoded.
MAX_PIXELS = 50_000_000
# Pillow refuses (DecompressionBombError) at twice this and warns above it; `process_image`
# turns the warning into a refusal too, so nothing above MAX_PIXELS is ever decoded.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
KINDS = {"photo": (400, 400), "logo": (600, 200)}
CACHE_CONTROL = "public, max-age=31536000, immutable"  # names are content hashes
NAME_RE = re.compile(r"^[0-9a-f]{40}\.(?:png|jpg)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


@dataclass(frozen=True)
class StoredImage:
    """A processed image: its name (content hash + extension), bytes and public URL."""

    name: str
    data: bytes
    content_type: str
    width: int
    height: int
    url: str = ""


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, {"file": message})


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def process_image(data: bytes, kind: str) -> StoredImage:
    """Check, resize and re-encode an upload for `kind` ("photo" or "logo").

    Raises TooLarge (413) for more than MAX_UPLOAD_BYTES and ValidationError (422) for
    anything that is not a PNG, JPEG, WebP or GIF image Pillow can decode within MAX_PIXELS.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        message = _("The image is larger than %(mb)d MB; choose a smaller one.",
                    mb=MAX_UPLOAD_BYTES // (1024 * 1024))
        raise TooLarge(message, {"file": message})
    if not data:
        raise _refuse(_("The file is empty; choose a photo or logo image."))
    box = KINDS[kind]
    not_an_image = _("This file is not a PNG, JPEG, WebP or GIF image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise _refuse(_("The image is %(w)d×%(h)d pixels, too large to process; "
                                    "choose one under %(mp)d megapixels.",
                                    w=width, h=height, mp=MAX_PIXELS // 1_000_000))
                if opened.format == "JPEG":
                    opened.draft("RGB", (box[0] * 2, box[1] * 2))  # decode big JPEGs scaled
                opened.seek(0)  # an animated GIF or WebP: its first frame
                img = ImageOps.exif_transpose(opened)  # loads (decodes) the pixels
                img = img.convert("RGBA" if _has_alpha(img) else "RGB")
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refuse(_("The image has too many pixels to process safely; choose one under "
                        "%(mp)d megapixels.", mp=MAX_PIXELS // 1_000_000)) from exc
    except UnidentifiedImageError as exc:
        raise _refuse(not_an_image) from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        raise _refuse(_("The image file is damaged or incomplete; save it again and retry.")
                      ) from exc
    if kind == "photo":
        side = min(box[0], img.width, img.height)
        # Square, for a round crop in the signature; a little above centre keeps the face.
        img = ImageOps.fit(img, (side, side), Image.Resampling.LANCZOS, centering=(0.5, 0.4))
    else:
        img.thumbnail(box, Image.Resampling.LANCZOS)
    img.info = {}  # nothing of the original's metadata goes into the new file
    out = io.BytesIO()
    if kind == "photo" and img.mode == "RGB":
        img.save(out, "JPEG", quality=86, optimize=True, progressive=True)
        ext = "jpg"
    else:
        img.save(out, "PNG", optimize=True)
        ext = "png"
    encoded = out.getvalue()
    name = f"{hashlib.sha256(encoded).hexdigest()[:40]}.{ext}"
    return StoredImage(name=name, data=encoded, content_type=CONTENT_TYPES[ext],
                       width=img.width, height=img.height)


# ------------------------------------------------------------------------------- storage

def media_base_url(config: Mapping) -> str:
    """Return the public base URL uploaded images are served from (no trailing slash)."""
    explicit = str(config.get("MEDIA_PUBLIC_URL") or "").strip()
    if explicit:
        return explicit.rstrip("/")
    bucket = str(config.get("MEDIA_S3_BUCKET") or "").strip()
    if bucket:
        endpoint = str(config.get("MEDIA_S3_ENDPOINT_URL") or "").strip()
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}"
        region = str(config.get("MEDIA_S3_REGION") or "us-east-1")
        return f"https://{bucket}.s3.{region}.amazonaws.com"
    return f"{str(config.get('PUBLIC_BASE_URL', '')).rstrip('/')}/media"


def is_uploaded_url(url: str, config: Mapping) -> bool:
    """Tell whether `url` names an image uploaded here (under the media base URL)."""
    base = media_base_url(config) + "/"
    return url.startswith(base) and bool(NAME_RE.match(url[len(base):]))


def store_image(image: StoredImage, config: Mapping) -> StoredImage:
    """Store a processed image (idempotent: same bytes, same name) and return it with its URL."""
    bucket = str(config.get("MEDIA_S3_BUCKET") or "").strip()
    if bucket:
        client = boto3.client("s3", region_name=str(config.get("MEDIA_S3_REGION") or None),
                              endpoint_url=str(config.get("MEDIA_S3_ENDPOINT_URL") or "") or None)
        try:
            extra = {"ACL": acl} if (acl := str(config.get("MEDIA_S3_ACL") or "")) else {}
            client.put_object(Bucket=bucket, Key=image.name, Body=image.data,
                              ContentType=image.content_type, CacheControl=CACHE_CONTROL,
                              **extra)
        finally:
            client.close()
    else:
        folder = Path(str(config["MEDIA_DIR"]))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / image.name
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(image.data)
                os.replace(tmp, target)  # readers never see a half-written file
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return StoredImage(name=image.name, data=image.data, content_type=image.content_type,
                       width=image.width, height=image.height,
                       url=f"{media_base_url(config)}/{image.name}")


def local_media_path(name: str, config: Mapping) -> Path | None:
    """Return the file of a locally stored image, or None (bad name, not stored here)."""
    if not NAME_RE.match(name):
        return None
    path = Path(str(config["MEDIA_DIR"])) / name
    return path if path.is_file() else None
