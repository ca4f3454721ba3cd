"""Contact records (issue 9): erasure, consent history, status, tags, engagement timeline.

Everything against real PostgreSQL and Redis: tracking hits go through the WSGI fast path and
the Redis stream, imports through the RQ queue, unsubscribes through /u.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from campaigns import consent, ledger, members, suppression
from campaigns.digest import email_digest
from campaigns.models import (
    CampaignMember,
    ConsentEvent,
    Contact,
    ContactTag,
    Send,
    Suppression,
)
from core import clock
from core.db import db
from core.tokens import make_token
from tests.builders import (
    make_contact,
    make_partner,
    make_sent_message,
    make_tracked_campaign,
    make_user,
    run_import_jobs,
)
from tests.conftest import REDIS_URL, SECRET
from tests.test_openapi import conforms
from tracking import analytics, ingest, sns
from tracking.models import EngagementRollup, Event, SendEngagement

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
T0 = datetime(2030, 3, 4, 9, 0, 0)


@pytest.fixture
def world(app, make_api):
    """Two partners, a partner user of each and a brand user, as API clients."""
    a, b = make_partner(name="North Advisors"), make_partner(name="South Advisors")
    user_a, token_a = make_user("partner_admin", a)
    _, token_b = make_user("partner_user", b)
    _, brand_token = make_user("brand_marketer")
    return {"a": a, "b": b, "user_a": user_a, "api": make_api(token_a),
            "other": make_api(token_b), "brand": make_api(brand_token)}


@pytest.fixture
def spec(client) -> dict:
    return client.get("/api/openapi.json").get_json()


def import_csv(api, app, text: str) -> dict:
    response = api.post("/api/contacts/import",
                        data={"file": (io.BytesIO(text.encode()), "clients.csv")},
                        content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    run_import_jobs(app)
    done = api.get(response.headers["Location"]).get_json()
    assert done["status"] == "done", done
    return done["result"]


def drain() -> int:
    return ingest.drain_all(redis.Redis.from_url(REDIS_URL))


def history(contact_id: int) -> list[tuple]:
    return [(e.source, e.consent, e.detail, e.user_id) for e in db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
        .order_by(ConsentEvent.id))]


def unsubscribe(client, send: Send) -> None:
    token = make_token(SECRET, "unsubscribe", send.id)
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200


def ses(kind: str, email: str, send: Send, message_id: str) -> None:
    """Apply an SES notification as the verified webhook does (signatures: test_tracking_sns)."""
    mail = {"messageId": "ses-1", "tags": {"send_id": [str(send.id)]}}
    if kind == "Bounce":
        body = {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": email}]}}
    else:
        body = {"notificationType": "Complaint", "mail": mail, "complaint": {
            "complainedRecipients": [{"emailAddress": email}]}}
    sns.handle_ses_notification(body, message_id)
    db.session.commit()


# --------------------------------------------------------------------------------- erasure


def test_erasing_a_suppressed_contact_keeps_only_a_hash_and_a_reimport_stays_suppressed(
        world, app, client):
    clock.freeze(T0)
    api = world["api"]
    campaign = make_tracked_campaign(partner=world["a"])
    send = make_sent_message(campaign, email="Leaver@Example.com", first_name="Lea")
    contact_id = send.contact_id
    api.patch(f"/api/contacts/{contact_id}", json={"tags": ["vip"]})
    unsubscribe(client, send)
    # A human open before the erasure: its IP and user agent are personal data.
    ingest.apply_hits([ingest.Hit("open", send.id, T0 + timedelta(hours=2), None, BROWSER,
                                  "203.0.113.9")])
    db.session.commit()
    sent_before = analytics.campaign_report(campaign)
    assert api.get(f"/api/contacts/{contact_id}").get_json()["status"] == "unsubscribed"

    assert api.delete(f"/api/contacts/{contact_id}").status_code == 204

    db.session.expire_all()
    assert db.session.get(Contact, contact_id) is None
    assert api.get(f"/api/contacts/{contact_id}").status_code == 404
    for model in (CampaignMember, ConsentEvent, ContactTag):
        assert db.session.scalar(select(func.count()).select_from(model)
                                 .where(model.contact_id == contact_id)) == 0
    # The send stays for the counts, without the person.
    kept = db.session.get(Send, send.id)
    assert (kept.contact_id, kept.email, kept.status, kept.link_targets) == (None, "", "sent", [])
    assert all((e.ip, e.user_agent) == ("", "") for e in db.session.scalars(select(Event)))
    after = analytics.campaign_report(campaign)
    for key in ("sent", "opens", "unique_opens", "unsubscribes"):
        assert after[key] == sent_before[key], key
    assert after["unsubscribes"] == 1 and after["sent"] == 1
    # The suppression stays, as the hash only.
    row = db.session.scalar(select(Suppression))
    assert (row.email, row.reason) == (None, "unsubscribed")
    assert row.email_hash == email_digest("leaver@example.com")
    assert "leaver" not in str([tuple(r) for r in db.session.execute(
        select(Suppression.email, Suppression.detail, Suppression.email_hash))])

    # Imported again (by this partner, or added by another): still never mailed.
    report = import_csv(api, app, "email,first_name,consent\nLEAVER@example.com,Lea,yes\n")
    assert report["created"] == 1
    again = api.get("/api/contacts?q=leaver").get_json()["items"][0]
    assert (again["status"], again["consent"]) == ("unsubscribed", True)
    created = world["other"].post("/api/contacts", json={"email": "leaver@example.com",
                                                         "consent": True})
    assert created.get_json()["status"] == "unsubscribed"
    # Every check honours the hash: members, the quick-send page's reason, the ledger's claim.
    contact = db.session.get(Contact, again["id"])
    assert suppression.exclusion_reason(contact) == "unsubscribed"
    assert suppression.suppression_reasons(["Leaver@example.com"]) == {
        "leaver@example.com": "unsubscribed"}
    draft = world["api"].post("/api/campaigns", json={
        "journey_id": campaign.journey_id, "sender": {"name": "Pat",
                                                      "reply_to": "pat@partner.example"}})
    excluded = members.add_members(db.session.get(type(campaign), draft.get_json()["id"]),
                                   [contact.id])["excluded"]
    assert excluded == [{"contact_id": contact.id, "reason": "unsubscribed",
                         "label": "Unsubscribed"}]
    queued = Send(campaign_id=campaign.id, step_index=0, contact_id=contact.id,
                  partner_id=campaign.partner_id, journey_id=campaign.journey_id,
                  template_version_id=kept.template_version_id, email=contact.email,
                  status="queued", due_at=clock.now())
    db.session.add(queued)
    db.session.commit()
    assert ledger.claim_batch(10) == []
    db.session.refresh(queued)
    assert (queued.status, queued.status_reason) == ("suppressed", "unsubscribed")


def test_erasure_cancels_open_messages_and_waits_for_one_being_sent(world):
    campaign = make_tracked_campaign(partner=world["a"])
    send = make_sent_message(campaign, status="queued")
    api = world["api"]
    db.session.execute(Send.__table__.update().where(Send.id == send.id)
                       .values(status="claimed"))
    db.session.commit()
    refused = api.delete(f"/api/contacts/{send.contact_id}")
    assert refused.status_code == 409
    assert "being sent right now" in refused.get_json()["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Contact, send.contact_id) is not None  # nothing erased
    db.session.execute(Send.__table__.update().where(Send.id == send.id).values(status="queued"))
    db.session.commit()
    assert api.delete(f"/api/contacts/{send.contact_id}").status_code == 204
    db.session.expire_all()
    gone = db.session.get(Send, send.id)
    assert (gone.status, gone.status_reason, gone.contact_id) == (
        "cancelled", "contact_erased", None)
    message = api.get(f"/api/messages/{send.id}").get_json()
    assert (message["status"], message["contact_id"], message["email"]) == (
        "cancelled", None, "")


def test_erasing_a_never_suppressed_contact_leaves_no_trace_of_the_address(world):
    contact = make_contact(world["a"], email="quiet@example.com")
    assert world["api"].delete(f"/api/contacts/{contact.id}").status_code == 204
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
    again = world["api"].post("/api/contacts", json={"email": "quiet@example.com",
                                                      "consent": True})
    assert again.get_json()["status"] == "mailable"


# ------------------------------------------------------------------------- consent history


def test_consent_changes_are_recorded_for_every_source(world, app, client):
    clock.freeze(T0)
    api, user = world["api"], world["user_a"]
    # api: created with consent, then withdrawn with a note.
    created = api.post("/api/contacts", json={
        "email": "ann@example.com", "consent": True,
        "consent_note": "Signed the paper form at the office"}).get_json()
    clock.advance(minutes=5)
    api.patch(f"/api/contacts/{created['id']}", json={"consent": False,
                                                      "consent_note": "Asked by phone"})
    api.patch(f"/api/contacts/{created['id']}", json={"first_name": "Ann"})  # no change
    assert history(created["id"]) == [
        ("api", True, "Signed the paper form at the office", user.id),
        ("api", False, "Asked by phone", user.id)]
    listed = api.get(f"/api/contacts/{created['id']}/consent").get_json()
    assert listed["total"] == 2
    assert [(i["source"], i["consent"], i["user_name"]) for i in listed["items"]] == [
        ("api", False, user.name), ("api", True, user.name)]  # newest first
    assert listed["items"][0]["source_label"] == "the API"

    # import: a new contact with consent, and a known one whose consent changes.
    import_csv(api, app, "email,consent\nbo@example.com,yes\nann@example.com,yes\n"
                         "cy@example.com,no\n")
    bo = db.session.scalar(select(Contact).where(Contact.email == "bo@example.com"))
    cy = db.session.scalar(select(Contact).where(Contact.email == "cy@example.com"))
    assert history(bo.id) == [("import", True, "clients.csv", user.id)]
    assert history(created["id"])[-1] == ("import", True, "clients.csv", user.id)
    assert history(cy.id) == []  # created without consent: nothing was given
    import_csv(api, app, "email,consent\nbo@example.com,yes\n")  # unchanged: no new event
    assert len(history(bo.id)) == 1

    # unsubscribe, bounce and complaint: recorded for every partner's contact with the address.
    campaign = make_tracked_campaign(partner=world["a"])
    leaver = make_sent_message(campaign, email="leaver@example.com")
    twin = make_contact(world["b"], email="leaver@example.com")
    unsubscribe(client, leaver)
    unsubscribe(client, leaver)  # twice: one event
    for contact_id in (leaver.contact_id, twin.id):
        assert [(s, c) for s, c, _d, u in history(contact_id)[-1:]] == [("unsubscribe", False)]
        assert len([h for h in history(contact_id) if h[0] == "unsubscribe"]) == 1
        assert db.session.get(Contact, contact_id).consent is False
    bouncer = make_sent_message(campaign, email="bouncer@example.com")
    ses("Bounce", "bouncer@example.com", bouncer, "m-1")
    assert history(bouncer.contact_id)[-1][:2] == ("bounce", None)
    db.session.expire_all()
    assert db.session.get(Contact, bouncer.contact_id).consent is True  # consent unchanged
    angry = make_sent_message(campaign, email="angry@example.com")
    ses("Complaint", "angry@example.com", angry, "m-2")
    assert history(angry.contact_id)[-1][:2] == ("complaint", False)
    # An SMTP hard bounce (the worker's path) records a bounce too.
    smtp = make_sent_message(campaign, email="nobody@example.com")
    suppression.add_suppressions(["nobody@example.com"], "bounced", "SMTP: mailbox does not exist")
    db.session.commit()
    assert history(smtp.contact_id)[-1] == ("bounce", None, "SMTP: mailbox does not exist", None)
    # form: through the web page (tests/test_contacts_pages.py); here the service as it calls it.
    from campaigns import contacts as contacts_service
    contacts_service.update_contact(db.session.get(Contact, cy.id), consent=True,
                                    consent_note="Ticked the box", source="form",
                                    user_id=user.id)
    assert history(cy.id) == [("form", True, "Ticked the box", user.id)]
    assert set(consent.SOURCE_WORDS) == {s for events in (
        history(created["id"]), history(leaver.contact_id), history(bouncer.contact_id),
        history(angry.contact_id), history(cy.id)) for s, *_rest in events}


def test_consent_note_is_validated(world):
    api = world["api"]
    contact = make_contact(world["a"])
    for body, field in (({"consent_note": "x"}, "consent_note"),
                        ({"consent": True, "consent_note": "a\nb"}, "consent_note"),
                        ({"consent": True, "consent_note": "x" * 501}, "consent_note"),
                        ({"consent": True, "consent_note": 3}, "consent_note")):
        response = api.patch(f"/api/contacts/{contact.id}", json=body)
        assert response.status_code == 422, body
        assert field in response.get_json()["error"]["fields"]
    assert history(contact.id) == [("api", True, "", None)]  # from make_contact only


# ---------------------------------------------------------------------------------- status


def test_status_says_why_a_contact_cannot_be_mailed(world):
    a, api = world["a"], world["api"]
    cases = {
        "mailable": make_contact(a, email="ok@example.com"),
        "no_consent": make_contact(a, email="nope@example.com", consent=False),
        "unsubscribed": make_contact(a, email="un@example.com"),
        "bounced": make_contact(a, email="bo@example.com", consent=False),
        "complained": make_contact(a, email="co@example.com"),
        "suppressed": make_contact(a, email="block@example.com"),
    }
    for status, reason in (("unsubscribed", "unsubscribed"), ("bounced", "bounced"),
                           ("complained", "complained"), ("suppressed", "manual")):
        suppression.suppress_email(cases[status].email.upper(), reason)
    listed = api.get("/api/contacts?per_page=10").get_json()["items"]
    assert {c["email"]: c["status"] for c in listed} == {
        c.email: status for status, c in cases.items()}
    labels = {c["status"]: c["status_label"] for c in listed}
    assert labels["no_consent"] == "No consent to email"
    assert labels["mailable"] == "Can be emailed"
    for status, contact in cases.items():
        assert api.get(f"/api/contacts/{contact.id}").get_json()["status"] == status
        only = api.get(f"/api/contacts?status={status}").get_json()
        assert [c["id"] for c in only["items"]] == [contact.id] and only["total"] == 1
    bad = api.get("/api/contacts?status=pending")
    assert bad.status_code == 422 and "status" in bad.get_json()["error"]["fields"]


def test_a_page_of_contacts_costs_the_same_queries_whatever_its_size(world):
    """Status and tags are read for a whole page at once, never one query per contact."""
    from sqlalchemy import event

    api, a = world["api"], world["a"]
    counts = []
    for n in (2, 12):
        while db.session.scalar(select(func.count()).select_from(Contact)) < n:
            c = make_contact(a)
            api.patch(f"/api/contacts/{c.id}", json={"tags": ["one", "two"]})
        statements: list[str] = []

        def seen(*args, statements=statements):
            statements.append(args[2])

        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert len(api.get("/api/contacts?per_page=50").get_json()["items"]) == n
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        counts.append(len([s for s in statements if "contact" in s.lower()]))
    assert counts[0] == counts[1]


# ------------------------------------------------------------------------------------ tags


def test_tags_are_stored_cleaned_filtered_and_validated(world):
    api, other = world["api"], world["other"]
    vip = api.post("/api/contacts", json={"email": "v@example.com", "consent": True,
                                         "tags": [" VIP ", "Spring  2026", "vip"]}).get_json()
    assert vip["tags"] == ["spring 2026", "vip"]  # cleaned, de-duplicated, sorted
    plain = api.post("/api/contacts", json={"email": "p@example.com", "consent": True}).get_json()
    assert plain["tags"] == []
    patched = api.patch(f"/api/contacts/{plain['id']}", json={"tags": ["newsletter", "vip"]})
    assert sorted(patched.get_json()["tags"]) == ["newsletter", "vip"]
    other.post("/api/contacts", json={"email": "o@example.com", "consent": True,
                                      "tags": ["vip"]})

    def emails(query: str) -> list[str]:
        return [c["email"] for c in api.get(f"/api/contacts?{query}").get_json()["items"]]

    assert emails("tag=vip") == ["v@example.com", "p@example.com"]  # own contacts only
    assert emails("tag=VIP&tag=newsletter") == ["p@example.com"]
    assert emails("tag=spring%202026") == ["v@example.com"]
    assert emails("tag=nothing") == []
    assert api.get(f"/api/contacts/{vip['id']}").get_json()["tags"] == vip["tags"]
    # Clearing.
    assert api.patch(f"/api/contacts/{vip['id']}", json={"tags": None}).get_json()["tags"] == []

    for tags, field in ((["a,b"], "tags.0"), (["ok", "tab\there"], "tags.1"),
                        (["x" * 51], "tags.0"), ([""], "tags.0"), ([3], "tags.0"),
                        ("vip", "tags"), ([f"t{i}" for i in range(51)], "tags"),
                        (["nul\x00"], "tags.0")):
        response = api.patch(f"/api/contacts/{plain['id']}", json={"tags": tags})
        assert response.status_code == 422, tags
        assert field in response.get_json()["error"]["fields"], (tags, response.get_json())
    assert sorted(api.get(f"/api/contacts/{plain['id']}").get_json()["tags"]) == [
        "newsletter", "vip"]  # unchanged by the refused calls
    assert api.get("/api/contacts?tag=" + "x" * 60).status_code == 422
    assert api.get("/api/contacts?" + "&".join(["tag=a"] * 11)).status_code == 422


# -------------------------------------------------------------------------------- timeline


def test_timeline_shows_each_message_with_human_and_machine_engagement(world, app):
    from werkzeug.test import Client

    from tracking.wsgi import TrackingFastPath

    clock.freeze(T0)
    api = world["api"]
    campaign = make_tracked_campaign(partner=world["a"], steps=2)
    first = make_sent_message(campaign, email="reader@example.com", sent_at=T0)
    clock.advance(hours=30)
    second = make_sent_message(campaign, email="reader@example.com", step_index=1,
                               sent_at=clock.now())
    fast = Client(TrackingFastPath(app, app.wsgi_app))
    clock.advance(hours=1)
    for token, ua in ((make_token(SECRET, "open", first.id), BROWSER),
                      (make_token(SECRET, "open", first.id), SCANNER)):
        assert fast.get(f"/t/o/{token}", headers={"User-Agent": ua}).status_code == 200
    clock.advance(minutes=3)
    click = fast.get(f"/t/c/{make_token(SECRET, 'click', first.id, 0)}",
                     headers={"User-Agent": BROWSER})
    assert click.status_code == 302
    assert fast.get(f"/t/c/{make_token(SECRET, 'click', first.id, 1)}",
                    headers={"User-Agent": SCANNER}).status_code == 302
    assert drain() == 4

    timeline = api.get(f"/api/contacts/{first.contact_id}/timeline").get_json()
    assert timeline["total"] == 2
    newest, oldest = timeline["items"]
    assert (newest["message_id"], newest["step"]) == (second.id, 1)  # newest first
    assert (oldest["message_id"], oldest["step"], oldest["status"]) == (first.id, 0, "sent")
    assert oldest["journey_name"].startswith("Tracked journey")
    assert oldest["status_label"] == "Sent"
    assert (oldest["opens"], oldest["machine_opens"]) == (1, 1)
    assert (oldest["clicks"], oldest["machine_clicks"]) == (1, 1)
    assert oldest["first_click_at"] is not None and oldest["unsubscribed_at"] is None
    assert (newest["opens"], newest["clicks"]) == (0, 0)
    engagement = db.session.get(SendEngagement, first.id)
    assert (engagement.opens, engagement.machine_opens) == (1, 1)
    paged = api.get(f"/api/contacts/{first.contact_id}/timeline?per_page=1&page=2").get_json()
    assert [i["message_id"] for i in paged["items"]] == [first.id]
    assert db.session.scalar(select(func.sum(EngagementRollup.opens))) == 1


def test_timeline_words_for_a_suppressed_and_a_bounced_message(world, client):
    campaign = make_tracked_campaign(partner=world["a"])
    sent = make_sent_message(campaign, email="gone@example.com")
    ses("Bounce", "gone@example.com", sent, "m-9")
    items = world["api"].get(f"/api/contacts/{sent.contact_id}/timeline").get_json()["items"]
    assert items[0]["bounced_at"] is not None
    assert "bounced" in items[0]["status_label"]
    skipped = make_sent_message(campaign, email="later@example.com", status="suppressed")
    db.session.execute(Send.__table__.update().where(Send.id == skipped.id)
                       .values(status_reason="no_consent"))
    db.session.commit()
    items = world["api"].get(f"/api/contacts/{skipped.contact_id}/timeline").get_json()["items"]
    assert items[0]["status_label"] == "Not sent: no consent to email"


# -------------------------------------------------------------------------------- tenancy


def test_every_new_endpoint_answers_404_for_a_foreign_id_and_403_for_brand_roles(world, spec):
    campaign = make_tracked_campaign(partner=world["a"])
    mine = make_sent_message(campaign).contact_id
    theirs = make_contact(world["b"]).id
    api, brand = world["api"], world["brand"]
    for path in (f"/api/contacts/{theirs}/timeline", f"/api/contacts/{theirs}/consent",
                 "/api/contacts/987654/timeline", "/api/contacts/987654/consent"):
        response = api.get(path)
        assert response.status_code == 404, path
    assert api.delete(f"/api/contacts/{theirs}").status_code == 404
    assert api.patch(f"/api/contacts/{theirs}", json={"tags": ["x"]}).status_code == 404
    assert db.session.get(Contact, theirs) is not None
    assert world["other"].get(f"/api/contacts/{theirs}").get_json()["tags"] == []
    for path in (f"/api/contacts/{mine}/timeline", f"/api/contacts/{mine}/consent"):
        assert brand.get(path).status_code == 403, path
    assert api.get(f"/api/contacts/{mine}/timeline?page=x").status_code == 400

    # The answers match the OpenAPI document.
    conforms(spec, "/api/contacts/{contact_id}/timeline", "get",
             api.get(f"/api/contacts/{mine}/timeline"))
    conforms(spec, "/api/contacts/{contact_id}/timeline", "get",
             api.get(f"/api/contacts/{theirs}/timeline"))
    conforms(spec, "/api/contacts/{contact_id}/timeline", "get",
             brand.get(f"/api/contacts/{mine}/timeline"))
    api.patch(f"/api/contacts/{mine}", json={"consent": False, "consent_note": "phone"})
    conforms(spec, "/api/contacts/{contact_id}/consent", "get",
             api.get(f"/api/contacts/{mine}/consent"))
    conforms(spec, "/api/contacts/{contact_id}/consent", "get",
             api.get(f"/api/contacts/{theirs}/consent"))
    conforms(spec, "/api/contacts", "get", api.get("/api/contacts?tag=vip&status=no_consent"))
    conforms(spec, "/api/contacts", "get", api.get("/api/contacts?status=nonsense"))
    conforms(spec, "/api/contacts/{contact_id}", "patch",
             api.patch(f"/api/contacts/{mine}", json={"tags": ["vip"]}))
    conforms(spec, "/api/contacts/{contact_id}", "delete", api.delete(f"/api/contacts/{mine}"))
    conforms(spec, "/api/messages/{message_id}", "get",
             api.get(f"/api/messages/{db.session.scalar(select(Send.id))}"))


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("get", "/api/contacts?page=10000000000000000000", None, 400),
    ("get", "/api/contacts/{id}/timeline?page=10000000000000000000", None, 400),
    ("get", "/api/contacts/{id}/consent?per_page=x", None, 400),
    ("get", "/api/contacts?q=%00", None, 422),
    ("get", "/api/contacts?tag=%00", None, 422),
    ("get", "/api/contacts/99999999999999999999999", None, 404),
    ("get", "/api/contacts/99999999999999999999999/timeline", None, 404),
    ("delete", "/api/contacts/99999999999999999999999", None, 404),
    ("patch", "/api/contacts/{id}", {"tags": ["\ud800"]}, 422),
    ("patch", "/api/contacts/{id}", {"tags": [{"deep": [[[[]]]]}]}, 422),
    ("patch", "/api/contacts/{id}", {"attributes": {"city": "\ud800"}}, 422),
    ("patch", "/api/contacts/{id}", {"first_name": "Bo\x00"}, 422),
    ("patch", "/api/contacts/{id}", {"consent": False, "consent_note": "\udfff"}, 422),
    ("patch", "/api/contacts/{id}", {"tags": ["x" * 100_000]}, 422),
])
def test_bad_input_is_a_clear_4xx_and_changes_nothing(world, method, path, body, status):
    contact = make_contact(world["a"], email="steady@example.com", first_name="Bo",
                           attributes={"city": "Oslo"})
    url = path.replace("{id}", str(contact.id))
    api = world["api"]
    response = api.patch(url, json=body) if method == "patch" else getattr(api, method)(url)
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()["error"]) == {"code", "message", "fields"}
    db.session.expire_all()
    kept = db.session.get(Contact, contact.id)
    assert (kept.first_name, kept.attributes, kept.consent) == ("Bo", {"city": "Oslo"}, True)
    assert api.get(f"/api/contacts/{contact.id}").get_json()["tags"] == []
