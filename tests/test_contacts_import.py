"""CSV contact import through HTTP: upload checks answer at once, the queued job imports.

Streaming, merging, row rejects, encoding and size limits; the import runs as an RQ job
(tests run the worker in burst mode) and its report is read from GET /api/imports/{id}.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from campaigns import contacts_import as imports
from campaigns.models import Contact
from core.db import db
from core.errors import TooLarge
from tests.builders import make_contact, make_partner, make_user, run_import_jobs


@pytest.fixture
def partner_api(app, make_api):
    partner = make_partner()
    _, token = make_user("partner_user", partner)
    api = make_api(token)
    api.app = app
    return partner, api


def upload(api, data: bytes | io.IOBase, name: str = "contacts.csv"):
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    return api.post("/api/contacts/import", data={"file": (stream, name)},
                    content_type="multipart/form-data")


def imported(api, data: bytes) -> dict:
    """Upload, run the queued import job like a worker, and return the finished report."""
    response = upload(api, data)
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    run_import_jobs(api.app)
    job = api.get(response.headers["Location"]).json
    assert job["status"] == "done", job
    assert job["progress"] == 1.0
    return job["result"]


def count_contacts() -> int:
    return db.session.scalar(select(func.count()).select_from(Contact))


def test_import_creates_merges_and_maps_extra_columns(partner_api):
    partner, api = partner_api
    make_contact(partner, email="known@example.com", first_name="Old", consent=False,
                 attributes={"city": "Paris", "tier": "a"})
    csv_bytes = (
        "\ufeffEmail,First Name,last_name,Consent,City,Favourite Color\r\n"
        "NEW@Example.com,Nia,Ng,yes,Oslo,blue\r\n"
        "known@example.com,Kim,,true,Rome,\r\n"
        '"quoted@example.com","Multi\nLine?",Q,no,Lima,red\r\n'
        "\r\n"
        "new@example.com,,Ngata,,,green\r\n"
    ).encode()
    body = imported(api, csv_bytes)
    # The quoted name spans two lines: a name must be one line, so that row is rejected.
    assert body["rejected"] == [{"row": 5, "reason": "first_name must be a single line of text"}]
    assert (body["created"], body["updated"]) == (1, 2)
    rows = {c["email"]: c for c in api.get("/api/contacts").json["items"]}
    assert set(rows) == {"new@example.com", "known@example.com"}
    new = rows["new@example.com"]
    # The second row for new@ merged: empty cells keep values, later non-empty ones win.
    assert (new["first_name"], new["last_name"], new["consent"]) == ("Nia", "Ngata", True)
    assert new["attributes"] == {"city": "Oslo", "favourite_color": "green"}
    known = rows["known@example.com"]
    assert (known["first_name"], known["consent"]) == ("Kim", True)
    assert known["attributes"] == {"city": "Rome", "tier": "a"}


def test_broken_rows_are_reported_by_line_and_good_rows_kept(partner_api):
    _partner, api = partner_api
    csv_bytes = (
        b"email,first_name,consent\n"
        b"good1@example.com,A,yes\n"
        b"not-an-email,B,yes\n"
        b",C,yes\n"
        b"good2@example.com,D,yes,surplus\n"
        b"good3@example.com,E,maybe\n"
        b"good4@example.com\n"
        b"huge@example.com," + b"x" * 200_000 + b",yes\n"
        b"good5@example.com,F,yes\n"
    )
    body = imported(api, csv_bytes)
    assert body["created"] == 3
    reasons = {r["row"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {3, 4, 5, 6, 8}
    assert reasons[8].startswith("unreadable CSV")
    assert reasons[3].startswith("invalid email")
    assert reasons[4] == "email is missing"
    assert reasons[5] == "has 4 fields but the header has 3"
    assert "consent" in reasons[6]
    emails = sorted(c["email"] for c in api.get("/api/contacts").json["items"])
    assert emails == ["good1@example.com", "good4@example.com", "good5@example.com"]
    assert body["rejected_count"] == 5 and body["rejected_truncated"] is False


def test_rejected_list_is_capped_but_counted(partner_api):
    _partner, api = partner_api
    lines = ["email"] + [f"bad{i}" for i in range(1500)] + ["ok@example.com"]
    body = imported(api, "\n".join(lines).encode())
    assert body["created"] == 1
    assert len(body["rejected"]) == imports.MAX_REPORTED_REJECTS
    assert body["rejected_count"] == 1500 and body["rejected_truncated"] is True
    assert body["rejected"][0]["row"] == 2


def test_wrong_encoding_is_a_clear_error_and_writes_nothing(partner_api):
    _partner, api = partner_api
    rows = ["email,first_name"] + [f"user{i}@example.com,Ann" for i in range(2500)]
    rows += ["zoe@example.com,Zoé", "last@example.com,Last"]
    latin1 = "\n".join(rows).encode("latin-1")
    response = upload(api, latin1)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "bad_encoding"
    assert "UTF-8" in error["message"] and "line 2502" in error["message"]
    assert count_contacts() == 0
    # A file ending inside a multi-byte character is refused the same way.
    ending = upload(api, "email\na@example.com\nb@example.com,é".encode("latin-1"))
    assert ending.status_code == 422 and "line 3" in ending.json["error"]["message"]


def test_missing_email_header_is_refused(partner_api):
    _partner, api = partner_api
    response = upload(api, b"mail,first_name\na@example.com,A\n")
    assert response.status_code == 422
    assert response.json["error"]["fields"]["email"] == "the header row has no email column"
    assert count_contacts() == 0
    assert upload(api, b"").status_code == 422
    assert api.post("/api/contacts/import", data={}).status_code in (400, 422)


def _big_csv(path, size: int) -> None:
    row = b"someone.with.a.long.address@example.com,First,Last,yes,attribute-value\n"
    with open(path, "wb") as fh:
        fh.write(b"email,first_name,last_name,consent,note\n")
        block = row * 10_000
        written = 0
        while written < size:
            fh.write(block)
            written += len(block)


def _multipart_file(csv_path, body_path) -> str:
    """Write a multipart body holding csv_path as field `file`, streaming; return the boundary."""
    boundary = "lastmile-test-boundary-7d1c"
    with open(body_path, "wb") as out, open(csv_path, "rb") as src:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                  f"filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\n".encode())
        while block := src.read(1024 * 1024):
            out.write(block)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return boundary


def test_file_over_50_mb_is_413_and_writes_nothing(partner_api, tmp_path):
    _partner, api = partner_api
    path, body = tmp_path / "big.csv", tmp_path / "body.bin"
    _big_csv(path, imports.MAX_IMPORT_BYTES + 1024 * 1024)
    boundary = _multipart_file(path, body)
    with open(body, "rb") as fh:
        response = api.client.post(
            "/api/contacts/import", input_stream=fh, content_length=body.stat().st_size,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 413
    assert "50 MB" in response.json["error"]["message"]
    assert count_contacts() == 0


def test_counted_stream_enforces_the_limit_without_content_length(partner_api, tmp_path):
    partner, _api = partner_api
    path = tmp_path / "big.csv"
    _big_csv(path, imports.MAX_IMPORT_BYTES + 1)
    with open(path, "rb") as fh, pytest.raises(TooLarge):
        imports.import_contacts(partner.id, fh)
    assert count_contacts() == 0


def test_import_is_per_partner_and_brand_may_not_import(partner_api, make_api):
    partner, api = partner_api
    other = make_partner()
    make_contact(other, email="shared@example.com", first_name="Theirs")
    body = imported(api, b"email,first_name,consent\nshared@example.com,Mine,yes\n")
    assert (body["created"], body["updated"]) == (1, 0)
    theirs = db.session.scalar(select(Contact).where(Contact.partner_id == other.id))
    db.session.refresh(theirs)
    assert theirs.first_name == "Theirs"
    _, token = make_user("brand_marketer")
    assert upload(make_api(token), b"email\na@example.com\n").status_code == 403


def test_large_import_streams_in_chunks(partner_api):
    partner, api = partner_api
    lines = ["email,consent,plan"] + [f"u{i}@example.com,yes,p{i % 3}" for i in range(2500)]
    lines += [f"U{i}@EXAMPLE.com,no," for i in range(0, 2500, 500)]  # repeats, other case
    body = imported(api, "\n".join(lines).encode())
    assert (body["created"], body["updated"], body["rejected"]) == (2500, 5, [])
    assert api.get("/api/contacts?per_page=1").json["total"] == 2500
    consenting = db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.partner_id == partner.id, Contact.consent.is_(True)))
    assert consenting == 2495


def _stale(job_id: int, status: str) -> None:
    """Make a job look like its worker died mid-run: running status, heartbeat long gone."""
    from datetime import timedelta

    from sqlalchemy import update

    from campaigns.models import ImportJob
    from core import clock

    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
        status=status, attempts=ImportJob.attempts + 1,
        heartbeat_at=clock.now() - timedelta(minutes=5)))
    db.session.commit()


def test_a_job_whose_worker_died_is_restarted_once_then_failed_with_a_reason(partner_api):
    partner, api = partner_api
    response = upload(api, b"email,consent\nann@example.com,yes\n")
    job_url = response.headers["Location"]
    job_id = response.json["id"]
    # The worker took the job and died: nothing was imported (its transaction died with it).
    _stale(job_id, "importing")
    assert imports.recover_stale_imports() == {"restarted": 1}
    assert api.get(job_url).json["status"] == "queued"
    # It dies again: a second restart is not tried; the partner reads why.
    _stale(job_id, "checking")
    assert imports.recover_stale_imports() == {"failed": 1}
    job = api.get(job_url).json
    assert job["status"] == "failed" and "upload the file again" in job["message"]
    assert job["attempts"] == 2
    run_import_jobs(api.app)  # the queue entry from the restart finds nothing to do
    assert api.get(job_url).json["status"] == "failed"
    assert count_contacts() == 0


def test_a_restarted_job_completes_and_a_live_one_is_left_alone(partner_api):
    _partner, api = partner_api
    response = upload(api, b"email,consent\nann@example.com,yes\nbob@example.com,no\n")
    _stale(response.json["id"], "importing")
    assert imports.recover_stale_imports() == {"restarted": 1}
    run_import_jobs(api.app)
    job = api.get(response.headers["Location"]).json
    assert job["status"] == "done" and job["result"]["created"] == 2
    assert job["attempts"] == 2
    # A job with a fresh heartbeat is never touched, whatever its status.
    fresh = upload(api, b"email\ncy@example.com\n").json["id"]
    assert imports.recover_stale_imports() == {}
    assert api.get(f"/api/imports/{fresh}").json["status"] == "queued"


def test_without_redis_the_embedded_worker_runs_queued_imports(partner_api):
    from campaigns.worker import run_embedded
    from tests.test_pipeline_support import configured

    _partner, api = partner_api
    with configured(api.app, REDIS_URL=""):
        response = upload(api, b"email,consent\nann@example.com,yes\n")
        assert response.status_code == 202
        totals = run_embedded(api.app, burst=True, interval=0.01, batch_size=5)
    assert totals.get("imports") == 1
    assert api.get(response.headers["Location"]).json["status"] == "done"
    assert count_contacts() == 1


def test_import_status_is_the_owning_partners_only(partner_api, make_api):
    _partner, api = partner_api
    job_url = upload(api, b"email\nann@example.com\n").headers["Location"]
    _, other_token = make_user("partner_user", make_partner())
    assert make_api(other_token).get(job_url).status_code == 404
    assert api.get("/api/imports/999999").status_code == 404
