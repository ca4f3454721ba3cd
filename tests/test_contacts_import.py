"""CSV contact imports: upload → detect → map → dry run → import, through HTTP and the worker.

Encodings and delimiters are detected; a mapping says what each column is; consent is never
guessed; a dry run reports (new, updated with what changes, duplicates, rejected) and writes
nothing; the import runs as an RQ job (tests run the worker in burst mode) and its report is
read from GET /api/imports/{id}. Real PostgreSQL, plus one run on SQLite (`make run`'s default).
"""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from campaigns import contacts_import as imports
from campaigns import csv_files
from campaigns.contacts import InvalidEmail, normalize_email
from campaigns.models import Contact, ImportChunk, ImportJob
from core import clock
from core.db import db
from core.errors import TooLarge
from tests.builders import listed, make_contact, make_partner, make_user, run_import_jobs

# ----------------------------------------------------------------------------------- helpers


@pytest.fixture
def partner_api(app, make_api):
    partner = make_partner()
    user, token = make_user("partner_user", partner)
    api = make_api(token)
    api.app = app
    api.user = user
    return partner, api


def upload(api, data: bytes | io.IOBase, name: str = "contacts.csv", **options):
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    return api.post("/api/contacts/import", data={"file": (stream, name), **options},
                    content_type="multipart/form-data")


def upload_big(api, data: bytes, tmp_path, name: str = "big.csv"):
    """Upload a file over the multipart parser's in-memory limit from a file we close."""
    boundary = "lastmile-test-boundary-big"
    body = tmp_path / "body.bin"
    body.write_bytes(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n".encode()
                     + data + f"\r\n--{boundary}--\r\n".encode())
    with open(body, "rb") as fh:
        return api.client.post(
            "/api/contacts/import", input_stream=fh, content_length=body.stat().st_size,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Authorization": f"Bearer {api.token}"})


def finished(api, response) -> dict:
    """Run the queued job like a worker would; return the finished job."""
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    run_import_jobs(api.app)
    job = api.get(response.headers["Location"]).json
    assert job["status"] == "done", job
    assert job["progress"] == 1.0
    return job


def imported(api, data: bytes, **options) -> dict:
    """Upload, run the job, return the finished report."""
    return finished(api, upload(api, data, **options))["result"]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def nothing_stored() -> bool:
    return count(Contact) == 0 and count(ImportJob) == 0 and count(ImportChunk) == 0


def contacts_of(partner) -> dict[str, Contact]:
    db.session.expire_all()
    return {c.email: c for c in db.session.scalars(
        select(Contact).where(Contact.partner_id == partner.id))}


@pytest.fixture
def spec(client) -> dict:
    return client.get("/api/openapi.json").get_json()


def conforms(spec: dict, path: str, method: str, response) -> None:
    from tests.test_openapi import conforms as check

    check(spec, path, method, response)


# ------------------------------------------------------------- a plain upload (auto mapping)


def test_plain_upload_maps_by_header_names_and_first_row_wins(partner_api):
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
    # Rows are numbered as a spreadsheet shows them: the two-line cell is one row (row 4).
    assert body["rejected"] == [{"row": 4, "reason": "first_name must be a single line of text"}]
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 0)
    # new@ appears again on row 6: the first row wins, the repeat is reported, not merged.
    assert body["duplicates"] == [{"row": 6, "email": "new@example.com", "first_row": 2}]
    assert body["encoding"] == "utf-8-sig" and body["delimiter"] == ","
    rows = contacts_of(partner)
    assert set(rows) == {"new@example.com", "known@example.com"}
    new = rows["new@example.com"]
    assert (new.first_name, new.last_name, new.consent) == ("Nia", "Ng", True)
    assert new.attributes == {"city": "Oslo", "favourite_color": "blue"}
    known = rows["known@example.com"]
    # Empty cells keep what was stored; attributes merge key by key.
    assert (known.first_name, known.last_name, known.consent) == ("Kim", known.last_name, True)
    assert known.attributes == {"city": "Rome", "tier": "a"}
    change = {f["field"]: (f["from"], f["to"]) for f in body["changes"][0]["fields"]}
    assert change["first_name"] == ("Old", "Kim")
    assert change["consent"] == ("no", "yes")
    assert change["attributes.city"] == ("Paris", "Rome")
    assert body["consent"]["mode"] == "column" and body["consent"]["column"] == "Consent"
    assert body["summary"][0].startswith("Consent comes from the column “Consent”")


def test_broken_rows_are_reported_by_row_and_good_rows_kept(partner_api):
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
        b"good5@example.com,F,yes,,\n"  # empty trailing cells (spreadsheets pad rows)
        b"nul@example.com,G\x00H,yes\n"
    )
    body = imported(api, csv_bytes)
    assert body["created"] == 3
    reasons = {r["row"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {3, 4, 5, 6, 8, 10}
    assert reasons[8].startswith("unreadable CSV")
    assert reasons[3].startswith("invalid email")
    assert reasons[4] == "email is missing"
    assert reasons[5] == "has 4 fields but the header has 3"
    assert "consent" in reasons[6]
    assert reasons[10] == "contains a NUL character"
    emails = sorted(c["email"] for c in api.get("/api/contacts").json["items"])
    assert emails == ["good1@example.com", "good4@example.com", "good5@example.com"]
    assert body["rejected_count"] == 6 and body["rejected_truncated"] is False
    assert "6 rows could not be used" in " ".join(body["summary"])


def test_rejected_list_is_capped_but_counted(partner_api):
    _partner, api = partner_api
    lines = ["email"] + [f"bad{i}" for i in range(1500)] + ["ok@example.com"]
    body = imported(api, "\n".join(lines).encode())
    assert body["created"] == 1
    assert len(body["rejected"]) == imports.MAX_REPORTED_REJECTS
    assert body["rejected_count"] == 1500 and body["rejected_truncated"] is True
    assert body["rejected"][0]["row"] == 2


# --------------------------------------------------------------------- encodings, delimiters

NAMES = [("zoe@example.com", "Zoë", "Ærø-Straße"), ("jose@example.com", "José", "Müller €")]


def _table(delimiter: str) -> str:
    return "".join(delimiter.join(row) + "\r\n"
                   for row in [("email", "first_name", "last_name"), *NAMES])


@pytest.mark.parametrize(("label", "data"), [
    ("utf-8", _table(",").encode("utf-8")),
    ("utf-8-sig", _table(",").encode("utf-8-sig")),
    ("utf-16-le", b"\xff\xfe" + _table("\t").encode("utf-16-le")),  # Excel "Unicode text"
    ("utf-16-be", b"\xfe\xff" + _table("\t").encode("utf-16-be")),
    ("utf-16-le", _table("\t").encode("utf-16-le")),  # no byte order mark: told by its zeros
    ("windows-1252", _table(";").encode("cp1252")),
], ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "utf-16-le-no-bom",
        "windows-1252"])
def test_each_encoding_is_detected_and_said(partner_api, label, data):
    partner, api = partner_api
    job = finished(api, upload(api, data))
    assert job["encoding"] == label
    assert job["encoding_name"]  # in words for the page
    assert job["result"]["created"] == 2 and job["result"]["rejected"] == []
    rows = contacts_of(partner)
    assert [(e, rows[e].first_name, rows[e].last_name) for e, _f, _l in NAMES] == NAMES


def test_windows_1252_is_detected_even_after_the_first_megabyte(partner_api, tmp_path):
    partner, api = partner_api
    lines = ["email,first_name"] + [f"user{i}@example.com,Ann" for i in range(45_000)]
    lines += ["zoe@example.com,Zoë"]
    data = "\n".join(lines).encode("cp1252")
    assert len(data) > imports.CHUNK_BYTES and b"\xeb" not in data[: imports.CHUNK_BYTES]
    job = finished(api, upload_big(api, data, tmp_path))
    assert job["encoding"] == "windows-1252"
    assert job["result"]["created"] == 45_001
    assert contacts_of(partner)["zoe@example.com"].first_name == "Zoë"


def test_utf16_across_chunk_boundaries_imports_every_row(partner_api, tmp_path):
    partner, api = partner_api
    text = "Email\tFirst name\n" + "".join(f"u{i}@example.com\tZoë{i}\n" for i in range(40_000))
    data = b"\xff\xfe" + text.encode("utf-16-le")
    assert len(data) > 2 * imports.CHUNK_BYTES
    job = finished(api, upload_big(api, data, tmp_path))
    assert (job["encoding"], job["delimiter"]) == ("utf-16-le", "\t")
    assert job["result"]["created"] == 40_000 and job["result"]["rejected"] == []
    rows = contacts_of(partner)
    assert rows["u39999@example.com"].first_name == "Zoë39999"


@pytest.mark.parametrize(("delimiter", "text"), [
    (",", 'email,first_name,last_name,note\r\n"ann@example.com","Ann","Lee; Jr.","a;b"\r\n'
          "bob@example.com,Bob,Ray,c\r\n"),
    (";", 'email;first_name;last_name;note\r\nann@example.com;Ann;"Lee; Jr.";a,b\r\n'
          "bob@example.com;Bob;Ray;1,5\r\n"),
    ("\t", 'email\tfirst_name\tlast_name\tnote\nann@example.com\tAnn\tLee; Jr.\ta,b\n'
           "bob@example.com\tBob\tRay\tc;d\n"),
], ids=["comma", "semicolon", "tab"])
def test_each_delimiter_is_detected_with_quoted_fields(partner_api, delimiter, text):
    partner, api = partner_api
    job = finished(api, upload(api, text.encode()))
    assert job["delimiter"] == delimiter
    assert job["columns"] == ["email", "first_name", "last_name", "note"]
    assert job["result"]["created"] == 2 and job["result"]["rejected"] == []
    ann = contacts_of(partner)["ann@example.com"]
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee; Jr.")
    assert ann.attributes["note"] in ("a;b", "a,b")


def test_delimiter_detection_is_not_fooled_by_quoted_or_decimal_commas():
    assert csv_files.detect_delimiter('email,name\n"a@x.org","Lee; Jr."\n"b@x.org","K; L"\n') == ","
    assert csv_files.detect_delimiter("email;amount\na@x.org;1,5\nb@x.org;2,75\n") == ";"
    assert csv_files.detect_delimiter("email\na@x.org\n") == ","  # one column: any will do
    assert csv_files.detect_delimiter("email\tname\na@x.org\tA, B\n") == "\t"


def test_damaged_or_non_csv_files_are_refused_at_once(partner_api):
    _partner, api = partner_api
    damaged = upload(api, b"\xff\xfe" + "email\na@x.org\n".encode("utf-16-le") + b"\x00")
    assert damaged.status_code == 422
    assert damaged.json["error"]["code"] == "bad_encoding"
    assert "damaged" in damaged.json["error"]["message"]
    workbook = upload(api, b"PK\x03\x04" + b"\x00" * 200, name="contacts.xlsx")
    assert workbook.status_code == 422 and workbook.json["error"]["code"] == "not_csv"
    assert "CSV UTF-8" in workbook.json["error"]["message"]
    assert upload(api, b"").status_code == 422
    assert upload(api, b"\n\n \n").json["error"]["fields"]["file"] == "has no header row"
    assert api.post("/api/contacts/import", data={}).status_code in (400, 422)
    assert nothing_stored()


def test_missing_email_header_is_refused(partner_api):
    _partner, api = partner_api
    response = upload(api, b"mail,first_name\na@example.com,A\n")
    assert response.status_code == 422
    assert response.json["error"]["fields"]["email"] == "the header row has no email column"
    assert nothing_stored()


# ---------------------------------------------------------------------------------- consent


def test_without_consent_column_or_attestation_the_first_line_says_so(partner_api):
    partner, api = partner_api
    make_contact(partner, email="had@example.com", consent=True)
    body = imported(api, b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n"
                         b"had@example.com,Had\n")
    assert body["summary"][0] == (
        "No consent column and no attestation: these 2 contacts were imported as “no consent "
        "to email” and cannot be mailed until consent is recorded.")
    assert "keep their consent as it was" in body["summary"][1]
    assert body["consent"]["mode"] == "none" and body["consent"]["new_without_consent"] == 2
    rows = contacts_of(partner)
    assert (rows["ann@example.com"].consent, rows["bob@example.com"].consent) == (False, False)
    assert rows["had@example.com"].consent is True  # never downgraded by a missing column


def test_attested_consent_is_recorded_on_each_row(partner_api):
    partner, api = partner_api
    make_contact(partner, email="nocons@example.com", consent=False)
    earlier = make_contact(partner, email="had@example.com", consent=True)
    earlier.consent_source = "double opt-in on the website"
    db.session.commit()
    source = "signed paper form at branch, 2026"
    response = upload(api, b"email\nann@example.com\nnocons@example.com\nhad@example.com\n",
                      consent=f"attested:{source}")
    job = finished(api, response)
    body = job["result"]
    assert job["consent"] == {"mode": "attested", "source": source, "column": None}
    assert body["summary"][0] == f"Consent attested by you: “{source}” is recorded on 2 contacts."
    assert "1 contact already had a consent record; it is kept." in body["summary"]
    rows = contacts_of(partner)
    for email in ("ann@example.com", "nocons@example.com"):
        assert rows[email].consent is True
        assert rows[email].consent_source.startswith(source)
        assert f"import {job['id']}" in rows[email].consent_source
        assert api.user.email in rows[email].consent_source
    assert rows["had@example.com"].consent_source == "double opt-in on the website"


def test_attesting_over_a_consent_column_is_refused_unless_it_is_ignored(partner_api):
    partner, api = partner_api
    data = b"email,consent\nann@example.com,no\nbob@example.com,yes\n"
    refused = upload(api, data, consent="attested:paper form")
    assert refused.status_code == 422
    assert "consent column" in refused.json["error"]["fields"]["consent"]
    assert nothing_stored()
    body = imported(api, data, consent="attested:paper form", mapping='{"consent": null}')
    assert body["ignored_columns"] == ["consent"]
    assert all(c.consent for c in contacts_of(partner).values())


def test_a_named_consent_column_with_another_header(partner_api):
    partner, api = partner_api
    body = imported(api, b"email,Opt-in\nann@example.com,ja\nbob@example.com,\n",
                    consent="column:Opt-in")
    assert body["consent"]["mode"] == "column" and body["consent"]["column"] == "Opt-in"
    assert (body["consent"]["with_consent"], body["consent"]["without_consent"]) == (1, 1)
    rows = contacts_of(partner)
    assert rows["ann@example.com"].consent is True
    assert "column “Opt-in”" in rows["ann@example.com"].consent_source
    assert rows["bob@example.com"].consent is False  # an empty answer is not a yes


# ------------------------------------------------------------ duplicates, updates, dry run


def test_duplicates_in_the_file_are_reported_and_the_first_row_wins(partner_api):
    partner, api = partner_api
    body = imported(api, b"email,first_name,last_name\nmaria@example.com,Maria,Garcia\n"
                         b"ann@example.com,Ann,Lee\nmaria@example.com,Maria,Dup\n"
                         b"MARIA@Example.com,Mary,Other\n")
    assert body["created"] == 2 and body["duplicate_count"] == 2
    assert body["duplicates"] == [
        {"row": 4, "email": "maria@example.com", "first_row": 2},
        {"row": 5, "email": "maria@example.com", "first_row": 2}]
    assert any(line.startswith("2 rows repeat an email address") for line in body["summary"])
    maria = contacts_of(partner)["maria@example.com"]
    assert (maria.first_name, maria.last_name) == ("Maria", "Garcia")


def test_an_update_that_changes_a_name_is_reported_not_silent(partner_api):
    partner, api = partner_api
    make_contact(partner, email="maria@example.com", first_name="Maria", last_name="Garcia",
                 consent=True, attributes={"city": "Lima"})
    make_contact(partner, email="same@example.com", first_name="Sam", last_name="Same",
                 consent=True)
    body = imported(api, b"email,first_name,last_name,city\n"
                         b"maria@example.com,Maria,Dup,Lima\nsame@example.com,Sam,Same,\n")
    assert (body["created"], body["updated"], body["unchanged"]) == (0, 1, 1)
    assert body["changes"] == [{"row": 2, "email": "maria@example.com", "fields": [
        {"field": "last_name", "from": "Garcia", "to": "Dup"}]}]
    assert contacts_of(partner)["maria@example.com"].last_name == "Dup"


def test_a_dry_run_writes_nothing_and_confirming_imports_it(partner_api, spec):
    partner, api = partner_api
    maria = make_contact(partner, email="maria@example.com", first_name="Maria",
                         last_name="Garcia")
    maria.consent_source = "website form"
    db.session.commit()
    data = (b"email,first_name,last_name,consent\nmaria@example.com,Maria,Dup,yes\n"
            b"new@example.com,New,Person,yes\nnew@example.com,New,Again,yes\n")
    response = upload(api, data, dry_run="1")
    conforms(spec, "/api/contacts/import", "post", response)
    job = finished(api, response)
    conforms(spec, "/api/imports/{import_id}", "get", api.get(f"/api/imports/{job['id']}"))
    assert job["dry_run"] is True
    assert job["message"] == "Check finished: nothing has been imported yet."
    body = job["result"]
    assert body["dry_run"] is True
    assert (body["created"], body["updated"], body["duplicate_count"]) == (1, 1, 1)
    assert body["changes"][0]["fields"] == [{"field": "last_name", "from": "Garcia",
                                             "to": "Dup"}]
    assert "would" in body["summary"][1]
    rows = contacts_of(partner)
    assert set(rows) == {"maria@example.com"} and rows["maria@example.com"].last_name == "Garcia"
    assert count(ImportChunk) > 0  # kept for the confirmation

    confirmed = api.post(f"/api/imports/{job['id']}/confirm")
    conforms(spec, "/api/imports/{import_id}/confirm", "post", confirmed)
    done = finished(api, confirmed)
    assert done["dry_run"] is False and done["result"]["dry_run"] is False
    assert (done["result"]["created"], done["result"]["updated"]) == (1, 1)
    rows = contacts_of(partner)
    assert rows["maria@example.com"].last_name == "Dup"
    assert (rows["new@example.com"].first_name, rows["new@example.com"].last_name) == (
        "New", "Person")
    assert count(ImportChunk) == 0 and done["preview"] == []
    again = api.post(f"/api/imports/{job['id']}/confirm")
    assert again.status_code == 409
    conforms(spec, "/api/imports/{import_id}/confirm", "post", again)


# ----------------------------------------------------------------------------------- mapping


def test_mapping_to_attributes_and_ignoring_columns(partner_api, spec):
    partner, api = partner_api
    data = ("E-Mail;Vorname;Stadt;Notizen;Telefon\n"
            "ann@example.com;Anna;Köln;private note;0221 123\n").encode()
    mapping = {"E-Mail": "email", "Vorname": "first_name", "Stadt": "attributes.city",
               "Notizen": None}
    response = upload(api, data, mapping=json.dumps(mapping))
    conforms(spec, "/api/contacts/import", "post", response)
    job = finished(api, response)
    conforms(spec, "/api/imports/{import_id}", "get", api.get(f"/api/imports/{job['id']}"))
    assert job["mapping"] == [
        {"column": "E-Mail", "field": "email"}, {"column": "Vorname", "field": "first_name"},
        {"column": "Stadt", "field": "attributes.city"}, {"column": "Notizen", "field": None},
        {"column": "Telefon", "field": "attributes.telefon"}]  # not mentioned: automatic
    assert job["result"]["ignored_columns"] == ["Notizen"]
    assert any("“Notizen”" in line for line in job["result"]["summary"])
    ann = contacts_of(partner)["ann@example.com"]
    assert ann.first_name == "Anna"
    assert ann.attributes == {"city": "Köln", "telefon": "0221 123"}


@pytest.mark.parametrize(("options", "field"), [
    ({"mapping": "{not json"}, "mapping"),
    ({"mapping": "[" * 15_000 + "]" * 15_000}, "mapping"),  # deep JSON
    ({"mapping": '["email"]'}, "mapping"),
    ({"mapping": '{"Email": "phone"}'}, "mapping.Email"),
    ({"mapping": '{"Email": 7}'}, "mapping.Email"),
    ({"mapping": '{"Missing": "email"}'}, "mapping.Missing"),
    ({"mapping": '{"Email": null}'}, "email"),
    ({"mapping": '{"Name": "email", "Email": "email"}'}, "mapping.Name"),
    ({"mapping": '{"Name": "attributes.9lives"}'}, "mapping.Name"),
    ({"consent": "maybe"}, "consent"),
    ({"consent": "column:Nope"}, "consent"),
    ({"consent": "attested:  "}, "consent_source"),
    ({"consent": "attested:" + "x" * 600}, "consent_source"),
    ({"dry_run": "perhaps"}, "dry_run"),
    ({"delimiter": "|"}, "delimiter"),
    ({"colour": "red"}, "colour"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_options_are_422_and_store_nothing(partner_api, spec, options, field):
    _partner, api = partner_api
    response = upload(api, b"Email,Name\nann@example.com,Ann\n", **options)
    assert response.status_code == 422, response.json
    conforms(spec, "/api/contacts/import", "post", response)
    assert field in response.json["error"]["fields"], response.json
    assert nothing_stored()


# --------------------------------------------------------------------- limits and tenancy


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
    _big_csv(path, csv_files.MAX_IMPORT_BYTES + 1024 * 1024)
    boundary = _multipart_file(path, body)
    with open(body, "rb") as fh:
        response = api.client.post(
            "/api/contacts/import", input_stream=fh, content_length=body.stat().st_size,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 413
    assert "50 MB" in response.json["error"]["message"]
    assert nothing_stored()


def test_counted_stream_enforces_the_limit_without_content_length(partner_api, tmp_path):
    partner, _api = partner_api
    path = tmp_path / "big.csv"
    _big_csv(path, csv_files.MAX_IMPORT_BYTES + 1)
    with open(path, "rb") as fh, pytest.raises(TooLarge):
        imports.import_contacts(partner.id, fh)
    assert count(Contact) == 0


def test_import_is_per_partner_and_brand_may_not_import(partner_api, make_api):
    partner, api = partner_api
    other = make_partner()
    make_contact(other, email="shared@example.com", first_name="Theirs")
    body = imported(api, b"email,first_name,consent\nshared@example.com,Mine,yes\n")
    assert (body["created"], body["updated"]) == (1, 0)
    assert contacts_of(other)["shared@example.com"].first_name == "Theirs"
    _, token = make_user("brand_marketer")
    assert upload(make_api(token), b"email\na@example.com\n").status_code == 403


def test_large_import_streams_through_the_staging_table(partner_api):
    partner, api = partner_api
    lines = ["email,consent,plan"] + [f"u{i}@example.com,yes,p{i % 3}" for i in range(2500)]
    lines += [f"U{i}@EXAMPLE.com,no," for i in range(0, 2500, 500)]  # repeats, other case
    body = imported(api, "\n".join(lines).encode())
    assert (body["created"], body["updated"], body["rejected"]) == (2500, 0, [])
    assert body["duplicate_count"] == 5  # the first row of each address won: still "yes"
    assert api.get("/api/contacts?per_page=1").json["total"] == 2500
    consenting = db.session.scalar(select(func.count()).select_from(Contact).where(
        Contact.partner_id == partner.id, Contact.consent.is_(True)))
    assert consenting == 2500


# --------------------------------------------------------------- the job: restarts, expiry


def _stale(job_id: int, status: str) -> None:
    """Make a job look like its worker died mid-run: running status, heartbeat long gone."""
    db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
        status=status, attempts=ImportJob.attempts + 1,
        heartbeat_at=clock.now() - timedelta(minutes=5)))
    db.session.commit()


def test_a_job_whose_worker_died_is_restarted_once_then_failed_with_a_reason(partner_api):
    _partner, api = partner_api
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
    assert count(Contact) == 0


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


def test_uploads_left_waiting_for_a_day_are_deleted_with_a_reason(partner_api):
    partner, api = partner_api
    waiting = imports.upload_import(partner.id, api.user.id, "wait.csv",
                                    io.BytesIO(b"email\nann@example.com\n"))
    checked = finished(api, upload(api, b"email\nbob@example.com\n", dry_run="1"))
    assert imports.recover_stale_imports() == {}
    clock.freeze(clock.now() + imports.UPLOAD_KEPT + timedelta(minutes=1))
    assert imports.recover_stale_imports() == {"expired": 2}
    for job_id in (waiting.id, checked["id"]):
        job = api.get(f"/api/imports/{job_id}").json
        assert job["status"] == "failed" and "waited more than a day" in job["message"]
    assert count(ImportChunk) == 0 and count(Contact) == 0


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
    assert count(Contact) == 1


def test_import_status_and_confirm_are_the_owning_partners_only(partner_api, make_api, spec):
    _partner, api = partner_api
    job = finished(api, upload(api, b"email\nann@example.com\n", dry_run="true"))
    _, other_token = make_user("partner_user", make_partner())
    other = make_api(other_token)
    assert other.get(f"/api/imports/{job['id']}").status_code == 404
    refused = other.post(f"/api/imports/{job['id']}/confirm")
    assert refused.status_code == 404
    conforms(spec, "/api/imports/{import_id}/confirm", "post", refused)
    assert api.get("/api/imports/999999").status_code == 404
    assert count(Contact) == 0


# ------------------------------------------------------------------ email normalization


TRICKY = ["Ann@Example.com", " ann@example.com ", "a.b+c@sub.example.org", "a..b@example.com",
          ".a@example.com", "a.@example.com", "a@-example.com", "a@example-.com",
          "a@example", "a@localhost", "a@x.test", "a@example.invalid", "a@ab--cd.example.com",
          "a@xn--bcher-kva.example", "a@bücher.example", "ü@example.com", '"a b"@example.com',
          "a@[127.0.0.1]", "a@example.c", "a@example.123", "x" * 65 + "@example.com",
          "a@" + "b" * 64 + ".com", "a@" + ".".join(["abcdefghij"] * 25) + ".com",
          "a@EXAMPLE.COM", "a@@example.com", "@example.com", "a@", "a@exa mple.com",
          "a@example.com.", "a\x00@example.com", "a@example..com", "a@1.2.3.4"]


def _both(raw: str) -> tuple[str, str]:
    def run(normalize):
        try:
            return "ok", normalize(raw)
        except InvalidEmail as exc:
            return "error", str(exc)

    return run(imports._Emails().normalize), run(normalize_email)


@pytest.mark.parametrize("raw", TRICKY)
def test_the_fast_email_path_agrees_with_normalize_email(raw):
    fast, slow = _both(raw)
    assert fast == slow


@settings(max_examples=400, deadline=None)
@given(st.from_regex(re.compile(r"[A-Za-z0-9.+_'-]{0,12}@[A-Za-z0-9.-]{0,20}"), fullmatch=True))
def test_the_fast_email_path_agrees_on_generated_addresses(raw):
    fast, slow = _both(raw)
    assert fast == slow


# -------------------------------------------------------------------- SQLite (make run)


def test_the_same_import_on_sqlite(tmp_path):
    """`make run` runs on SQLite: staging by executemany, the same report and merge SQL."""
    from accounts import services as accounts
    from app import create_app
    from core import migrate

    url = f"sqlite:///{tmp_path / 'lastmile.db'}"
    sqlite_app = create_app({"DATABASE_URL": url, "REDIS_URL": "", "SECRET_KEY": "sqlite",
                             "TESTING": True})
    with sqlite_app.app_context():
        migrate.upgrade(url)
        listed(["gold"], ["west"])  # a partner's tier and region come from the brand's lists
        partner = accounts.create_partner(name="Lite", tier="gold", region="west")
        make_contact(partner, email="maria@example.com", first_name="Maria",
                     last_name="Garcia", consent=False, attributes={"tier": "a"})
        data = ("email;first_name;last_name;city\nmaria@example.com;Maria;Dup;Lima\n"
                "ann@example.com;Ann;;Oslo\nann@example.com;Again;;\n").encode("cp1252")
        plan = imports.ImportPlan(encoding="windows-1252", delimiter=";",
                                  consent=imports.Consent("attested", "paper form"),
                                  consent_record="paper form (test)")
        dry = imports.import_contacts(partner.id, io.BytesIO(data), plan=plan, dry_run=True)
        assert (dry.created, dry.updated, dry.duplicate_count) == (1, 1, 1)
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 1
        report = imports.import_contacts(partner.id, io.BytesIO(data), plan=plan)
        assert (report.created, report.updated) == (1, 1)
        fields = {f["field"] for f in report.changes[0]["fields"]}
        assert fields == {"last_name", "consent", "consent_source", "attributes.city"}
        rows = contacts_of(partner)
        assert (rows["maria@example.com"].last_name, rows["maria@example.com"].consent) == (
            "Dup", True)
        assert rows["maria@example.com"].attributes == {"tier": "a", "city": "Lima"}
        assert rows["ann@example.com"].consent_source == "paper form (test)"
        again = imports.import_contacts(partner.id, io.BytesIO(data), plan=plan)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ the web wizard (pages)


@pytest.fixture
def wizard(app, client):
    from tests.test_web_pages import PASSWORD, login

    partner = make_partner()
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    login(client, user.email)
    return partner, user


def _form_token(client, path: str) -> str:
    from tests.test_web_pages import page_token

    return page_token(client, path)


def test_the_wizard_uploads_maps_checks_then_imports(client, wizard, make_api):
    partner, _user = wizard
    maria = make_contact(partner, email="maria@example.com", first_name="Maria",
                         last_name="Garcia", consent=True)
    maria.consent_source = "website form"
    db.session.commit()
    token = _form_token(client, "/partner/contacts/import")
    data = ("E-Mail;Vorname;Nachname;Notiz\nmaria@example.com;Maria;Dup;x\n"
            "zoe@example.com;Zoë;Ærø;y\n")
    response = client.post("/partner/contacts/import", data={
        "csrf_token": token, "file": (io.BytesIO(data.encode("cp1252")), "kunden.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    columns_url = response.headers["Location"]
    assert columns_url.endswith("/columns")
    page = client.get(columns_url).get_data(as_text=True)
    assert "Windows-1252" in page and "semicolon" in page and "Zoë" in page
    assert re.search(r'name="target-0"[^>]*>\s*<option value="email" selected', page)

    base = {"csrf_token": token, "target-0": "email", "target-1": "first_name",
            "target-2": "last_name", "target-3": "ignore"}
    no_choice = client.post(columns_url, data=base)
    assert no_choice.status_code == 422
    assert "Choose how consent is recorded" in no_choice.get_data(as_text=True)
    no_source = client.post(columns_url, data={**base, "consent_mode": "attested"})
    assert no_source.status_code == 422
    assert "Say where the consent comes from" in no_source.get_data(as_text=True)
    bad_name = client.post(columns_url, data={**base, "target-3": "attribute", "attr-3": "9x",
                                              "consent_mode": "none"})
    assert bad_name.status_code == 422
    assert "An extra field&#39;s name must be" in bad_name.get_data(as_text=True)
    assert count(Contact) == 1 and count(ImportChunk) == 1

    checked = client.post(columns_url, data={**base, "consent_mode": "attested",
                                             "consent_source": "paper form at the branch"})
    assert checked.status_code == 302
    status_url = checked.headers["Location"]
    assert client.get(status_url + "?format=json").json["dry_run"] is True
    run_import_jobs(client.application)
    page = client.get(status_url).get_data(as_text=True)
    assert "nothing imported yet" in page and "Import now" in page
    assert "<del>Garcia</del> → <ins>Dup</ins>" in page
    assert contacts_of(partner)["maria@example.com"].last_name == "Garcia"

    # Another partner can neither read nor confirm it.
    other_client = client.application.test_client()
    from tests.test_web_pages import PASSWORD, login

    other, _ = make_user("partner_user", make_partner(), password=PASSWORD)
    login(other_client, other.email)
    other_token = _form_token(other_client, "/partner/contacts/import")
    assert other_client.get(columns_url).status_code == 404
    assert other_client.post(status_url + "/confirm",
                             data={"csrf_token": other_token}).status_code == 404

    confirmed = client.post(status_url + "/confirm", data={"csrf_token": token})
    assert confirmed.status_code == 302
    run_import_jobs(client.application)
    page = client.get(status_url).get_data(as_text=True)
    assert "Imported “kunden.csv”" in page
    rows = contacts_of(partner)
    assert rows["maria@example.com"].last_name == "Dup"
    assert (rows["zoe@example.com"].first_name, rows["zoe@example.com"].last_name) == (
        "Zoë", "Ærø")
    assert rows["zoe@example.com"].consent_source.startswith("paper form at the branch")
    assert client.get(columns_url).status_code == 302  # an imported file is not remapped


def test_an_upload_the_server_refuses_is_an_inline_error(client, wizard):
    token = _form_token(client, "/partner/contacts/import")
    response = client.post("/partner/contacts/import", data={
        "csrf_token": token, "file": (io.BytesIO(b"PK\x03\x04" + b"\x00" * 64), "list.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "not a CSV file" in html and 'class="field-error"' in html
    missing = client.post("/partner/contacts/import", data={"csrf_token": token},
                          content_type="multipart/form-data")
    assert missing.status_code == 422
    assert "Choose a CSV file to import." in missing.get_data(as_text=True)
    assert nothing_stored()


def test_the_columns_can_be_read_again_with_another_delimiter(client, wizard):
    token = _form_token(client, "/partner/contacts/import")
    response = client.post("/partner/contacts/import", data={
        "csrf_token": token,
        "file": (io.BytesIO(b"email;name\nann@example.com;Ann, Lee\n"), "list.csv")},
        content_type="multipart/form-data")
    columns_url = response.headers["Location"]
    job_id = int(columns_url.split("/")[-2])
    assert db.session.get(ImportJob, job_id).columns == ["email", "name"]
    delimiter_url = columns_url.replace("/columns", "/delimiter")
    client.post(delimiter_url, data={"csrf_token": token, "delimiter": "comma"})
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert (job.delimiter, job.columns) == (",", ["email;name"])
    assert "a comma" in client.get(columns_url).get_data(as_text=True)
    client.post(delimiter_url, data={"csrf_token": token, "delimiter": "semicolon"})
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert (job.delimiter, job.columns) == (";", ["email", "name"])


def test_a_report_from_before_mappings_still_reads(partner_api, spec):
    partner, api = partner_api
    job = ImportJob(partner_id=partner.id, user_id=api.user.id, filename="old.csv",
                    status="done", total_bytes=10, processed_bytes=10, attempts=1, error="",
                    result={"created": 2, "updated": 1, "rejected": [], "rejected_count": 0,
                            "rejected_truncated": False})
    db.session.add(job)
    db.session.commit()
    response = api.get(f"/api/imports/{job.id}")
    conforms(spec, "/api/imports/{import_id}", "get", response)
    assert response.json["result"]["summary"] == [
        "2 new contacts added; 1 contact you already had changed; 0 already matched the file."]


def test_nul_bytes_in_names_cells_and_the_filename_change_nothing_else(partner_api):
    partner, api = partner_api
    job = finished(api, upload(api, b"email,first_name,note\nann@example.com,A\x00nn,x\x00y\n"
                                    b"bob@example.com,Bob,ok\n", name="li\x00st\x01.csv"))
    assert job["filename"] == "list.csv"
    assert [r["row"] for r in job["result"]["rejected"]] == [2]
    assert job["result"]["rejected"][0]["reason"] == "contains a NUL character"
    assert set(contacts_of(partner)) == {"bob@example.com"}


def test_an_import_writes_the_consent_history(partner_api):
    """New contacts with consent, and known ones whose consent changed, get an `import` event."""
    from sqlalchemy import text

    partner, api = partner_api
    make_contact(partner, email="ann@example.com", consent=False)
    make_contact(partner, email="same@example.com", consent=True)
    imported(api, b"email,consent\nbo@example.com,yes\nann@example.com,yes\n"
                  b"cy@example.com,no\nsame@example.com,yes\n")
    rows = db.session.execute(text(
        "SELECT c.email, e.consent, e.source, e.detail, e.user_id FROM consent_events e "
        "JOIN contacts c ON c.id = e.contact_id WHERE e.source = 'import' "
        "ORDER BY c.email")).all()
    assert [tuple(r) for r in rows] == [
        ("ann@example.com", True, "import", "contacts.csv", api.user.id),
        ("bo@example.com", True, "import", "contacts.csv", api.user.id)]
    imported(api, b"email\ndi@example.com\n", consent="attested:signed form, 2026")
    detail = db.session.execute(text(
        "SELECT e.detail FROM consent_events e JOIN contacts c ON c.id = e.contact_id "
        "WHERE c.email = 'di@example.com' AND e.source = 'import'")).scalar()
    assert detail == "signed form, 2026"


def test_the_merge_join_is_never_a_nested_loop_whatever_the_statistics(partner_api,
                                                                          monkeypatch):
    """Stale statistics ("the contacts table is empty") once made a re-import quadratic."""
    from sqlalchemy import text

    partner, api = partner_api
    db.session.execute(text("ANALYZE contacts"))  # statistics of an empty table
    db.session.commit()
    data = "email,first_name\n" + "".join(f"u{i}@example.com,A{i}\n" for i in range(3000))
    imported(api, data.encode())
    plans: list[str] = []
    real = imports._report_and_merge

    def explained(partner_id, staged, consent, plan, report, *, dry_run):
        resolve = imports._merge_sql(True, consent.mode)["resolve"]
        select_only = resolve.replace("CREATE TEMP TABLE import_merge ON COMMIT DROP AS", "")
        plans.append("\n".join(r[0] for r in db.session.execute(
            text("EXPLAIN " + select_only), {"partner": partner_id, "record": ""})))
        return real(partner_id, staged, consent, plan, report, dry_run=dry_run)

    monkeypatch.setattr(imports, "_report_and_merge", explained)
    body = imported(api, data.replace(",A", ",B").encode(), dry_run="1")
    assert body["updated"] == 3000
    assert plans and "Nested Loop" not in plans[0], plans[0]
    assert "Hash" in plans[0]
