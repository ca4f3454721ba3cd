"""Profile photo and logo uploads: checked by content, resized, stripped, stored (disk or S3)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from PIL import Image

from accounts import media
from accounts.models import Partner
from core.db import db
from core.errors import TooLarge, ValidationError
from tests.builders import make_partner, make_user
from tests.profile_helpers import image_bytes, jpeg_with_gps, multipart, png_bomb

BUCKET = "lastmile-media-test"


@pytest.fixture
def media_dir(app, tmp_path, monkeypatch):
    folder = tmp_path / "media"
    monkeypatch.setitem(app.config, "MEDIA_DIR", str(folder))
    monkeypatch.setitem(app.config, "MEDIA_S3_BUCKET", "")
    return folder


@pytest.fixture
def admin(app, make_api):
    partner = make_partner(name="Northside")
    _, token = make_user("partner_admin", partner)
    api = make_api(token)
    api.partner = partner
    return api


def upload(api, kind: str, data: bytes, filename: str = "me.png",
           content_type: str = "image/png"):
    body, form_type = multipart(data, filename, content_type)
    return api.post(f"/api/partners/{api.partner.id}/profile/{kind}", data=body,
                    content_type=form_type)


def stored_files(folder) -> list:
    return sorted(p for p in folder.glob("*")) if folder.exists() else []


def partner_images(partner_id: int) -> tuple[str | None, str | None]:
    db.session.expire_all()
    partner = db.session.get(Partner, partner_id)
    return partner.photo_url, partner.logo_url


# ---------------------------------------------------------------------------- the service


def test_a_phone_photo_is_turned_upright_cropped_square_and_stripped():
    # 800×600 stored sideways (EXIF orientation 6: rotate 90° to display): shows as 600×800.
    raw = jpeg_with_gps((800, 600), orientation=6)
    assert b"SecretCam" in raw and b"secret comment" in raw
    image = media.process_image(raw, "photo")
    assert (image.width, image.height) == (400, 400)
    assert image.content_type == "image/jpeg" and image.name.endswith(".jpg")
    for secret in (b"SecretCam", b"Secret editor", b"secret comment", b"Exif"):
        assert secret not in image.data
    reopened = Image.open(io.BytesIO(image.data))
    assert reopened.format == "JPEG" and not reopened.getexif()


def test_a_logo_keeps_its_shape_and_transparency_within_600_by_200():
    raw = image_bytes("PNG", (1800, 300), (0, 0, 0, 0), mode="RGBA")
    image = media.process_image(raw, "logo")
    assert (image.width, image.height) == (600, 100)
    assert image.content_type == "image/png"
    assert Image.open(io.BytesIO(image.data)).mode == "RGBA"
    small = media.process_image(image_bytes("WEBP", (120, 40)), "logo")
    assert (small.width, small.height) == (120, 40)  # never enlarged


@pytest.mark.parametrize(("data", "words"), [
    (b"Dear diary, this is not an image.", "not a PNG, JPEG, WebP or GIF"),
    (b"%PDF-1.7\n1 0 obj\n", "not a PNG, JPEG, WebP or GIF"),
    (image_bytes("BMP", (10, 10)), "not a PNG, JPEG, WebP or GIF"),
    (image_bytes("TIFF", (10, 10)), "not a PNG, JPEG, WebP or GIF"),
    (image_bytes("PNG", (300, 300))[:200], "damaged or incomplete"),
    (png_bomb(100_000, 100_000), "too many pixels"),  # Pillow's own bomb check
    (png_bomb(9_000, 9_000), "too many pixels"),  # 81 MP: over MAX_PIXELS, under Pillow's
    (b"", "empty"),
])
def test_what_is_not_a_safe_image_is_refused_with_a_reason(data, words):
    with pytest.raises(ValidationError) as caught:
        media.process_image(data, "photo")
    assert caught.value.status == 422 and words in caught.value.fields["file"]


def test_an_oversized_upload_is_413():
    with pytest.raises(TooLarge) as caught:
        media.process_image(b"\x89PNG" + b"\x00" * media.MAX_UPLOAD_BYTES, "photo")
    assert caught.value.status == 413 and "5 MB" in caught.value.fields["file"]


# ---------------------------------------------------------------------------- local storage


def test_an_uploaded_photo_is_stored_served_and_used(app, admin, media_dir, client):
    response = upload(admin, "photo", jpeg_with_gps(), "holiday.jpg", "image/jpeg")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    url = body["image_url"]
    assert url.startswith("http://lastmile.test/media/") and url.endswith(".jpg")
    assert body["fields"]["photo_url"] == url
    assert body["update"] == {"applied": ["photo_url"], "pending": []}
    [stored] = stored_files(media_dir)
    assert url.endswith(stored.name)

    with client.get(url.removeprefix("http://lastmile.test")) as served:
        assert served.status_code == 200 and served.mimetype == "image/jpeg"
        assert served.data == stored.read_bytes()
        assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/media/../secret_key").status_code == 404
    assert client.get("/media/" + "0" * 40 + ".png").status_code == 404

    # The same picture again: same name, nothing new stored.
    again = upload(admin, "photo", jpeg_with_gps(), "holiday.jpg", "image/jpeg")
    assert again.get_json()["image_url"] == url and len(stored_files(media_dir)) == 1
    # The uploaded URL is accepted as a profile value (it is on the app's own host).
    assert admin.put(f"/api/partners/{admin.partner.id}/profile",
                     json={"logo_url": url}).status_code == 200


@pytest.mark.parametrize(("data", "filename", "status", "words"), [
    (b"this is a text file\n" * 10, "photo.png", 422, "not a PNG, JPEG, WebP or GIF"),
    (png_bomb(100_000, 100_000), "bomb.png", 422, "too many pixels"),
    (b"\x89PNG" + b"\x00" * (5 * 1024 * 1024), "huge.png", 413, "5 MB"),
])
def test_a_refused_upload_answers_clearly_and_stores_nothing(app, admin, media_dir, data,
                                                             filename, status, words):
    response = upload(admin, "photo", data, filename)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert words in error["message"] and words in error["fields"]["file"]
    assert stored_files(media_dir) == []
    assert partner_images(admin.partner.id) == (None, None)


def test_an_upload_without_a_file_is_422(app, admin, media_dir):
    response = admin.post(f"/api/partners/{admin.partner.id}/profile/logo",
                          json={"file": "https://example.com/x.png"})
    assert response.status_code == 422 and "file" in response.get_json()["error"]["fields"]
    assert stored_files(media_dir) == []


def test_an_upload_of_an_approval_gated_image_waits_for_the_brand(app, admin, media_dir,
                                                                  make_api):
    _, brand_token = make_user("brand_admin")
    brand = make_api(brand_token)
    brand.put("/api/brand/profile-rules", json={"approval_required": ["logo_url"]})
    response = upload(admin, "logo", image_bytes("PNG", (900, 300)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["fields"]["logo_url"] is None
    assert body["changes"]["logo_url"]["value"] == body["image_url"]
    assert partner_images(admin.partner.id) == (None, None)
    approved = brand.post(f"/api/partners/{admin.partner.id}/profile/approve")
    assert approved.get_json()["fields"]["logo_url"] == body["image_url"]


# ---------------------------------------------------------------------------- S3 (moto server)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(app, moto_endpoint, monkeypatch, media_dir) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.close()
    monkeypatch.setitem(app.config, "MEDIA_S3_BUCKET", BUCKET)
    monkeypatch.setitem(app.config, "MEDIA_S3_REGION", "us-east-1")
    monkeypatch.setitem(app.config, "MEDIA_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setitem(app.config, "MEDIA_PUBLIC_URL", "")
    monkeypatch.setitem(app.config, "MEDIA_S3_ACL", "public-read")
    return moto_endpoint


def test_with_a_bucket_uploads_go_to_s3_and_load_from_its_url(app, admin, s3, media_dir):
    response = upload(admin, "logo", image_bytes("GIF", (1200, 400), 3, mode="P"), "logo.gif",
                      "image/gif")
    assert response.status_code == 200, response.get_json()
    url = response.get_json()["image_url"]
    assert url.startswith(f"{s3}/{BUCKET}/") and url.endswith(".png")
    assert response.get_json()["fields"]["logo_url"] == url
    assert stored_files(media_dir) == []  # nothing on this server's disk

    client = boto3.client("s3", region_name="us-east-1", endpoint_url=s3)
    try:
        key = url.rsplit("/", 1)[1]
        head = client.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == "image/png"
        assert head["CacheControl"] == "public, max-age=31536000, immutable"
        stored = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    finally:
        client.close()
    assert Image.open(io.BytesIO(stored)).size == (600, 200)
    fetched = requests.get(url, timeout=10)  # what a mail client does
    assert fetched.status_code == 200 and fetched.content == stored

    # A refused upload puts nothing in the bucket.
    refused = upload(admin, "photo", b"not an image", "me.png")
    assert refused.status_code == 422
    listed = boto3.client("s3", region_name="us-east-1", endpoint_url=s3).list_objects_v2(
        Bucket=BUCKET)
    assert [o["Key"] for o in listed["Contents"]] == [key]
