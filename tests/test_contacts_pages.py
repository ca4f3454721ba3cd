"""The partner's contact pages (web/contacts.py) through Flask's test client."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select

from campaigns import suppression
from campaigns.models import ConsentEvent, Contact, Send
from core import clock
from core.db import db
from tests.builders import (
    make_contact,
    make_journey,
    make_partner,
    make_sent_message,
    make_tracked_campaign,
    make_user,
)
from tests.test_web_pages import PASSWORD, login, page_token


def signed_in(client, partner=None, name: str = "Ann Advisor"):
    partner = partner or make_partner(tier="gold")
    user, _ = make_user("partner_user", partner, password=PASSWORD)
    user.name = name
    db.session.commit()
    login(client, user.email)
    return partner, user


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def test_list_shows_status_in_words_tags_and_offers_quick_send_only_when_mailable(client):
    partner, _user = signed_in(client)
    make_journey(steps=1, quick_send=True)
    ok = make_contact(partner, email="ok@example.com")
    nope = make_contact(partner, email="nope@example.com", consent=False)
    gone = make_contact(partner, email="gone@example.com")
    suppression.suppress_email("gone@example.com", "unsubscribed")
    from campaigns import contacts

    contacts.update_contact(ok, tags=["vip"])
    html = text(client.get("/partner/contacts"))
    rows = dict(re.findall(r'data-contact="(\d+)" data-status="(\w+)"', html))
    assert rows == {str(ok.id): "mailable", str(nope.id): "no_consent",
                    str(gone.id): "unsubscribed"}
    assert "No consent to email" in html and "Unsubscribed" in html and "no_consent" not in \
        re.sub(r'(data-status|class)="[^"]*"|value="no_consent"', "", html)
    for contact, offered in ((ok, True), (nope, False), (gone, False)):
        assert (f"/partner/quick-send?contact_ids={contact.id}\"" in html) is offered
    assert 'class="tag"' in html and ">vip<" in html
    filtered = text(client.get("/partner/contacts?tag=VIP"))
    assert "ok@example.com" in filtered and "nope@example.com" not in filtered
    by_status = text(client.get("/partner/contacts?status=no_consent"))
    assert "nope@example.com" in by_status and "ok@example.com" not in by_status
    assert "No contact matches." in text(client.get("/partner/contacts?q=zzz"))
    # A NUL in any address is refused at the door with a page saying why; a huge page is
    # clamped.
    bad = client.get("/partner/contacts?q=%00")
    assert bad.status_code == 422 and "NUL" in text(bad)
    assert client.get("/partner/contacts?page=99999999999999999999").status_code == 200
    # The quick-send page of a contact who cannot be mailed says why and offers no send.
    page = text(client.get(f"/partner/contacts/{gone.id}/quick-send", follow_redirects=True))
    assert "This person unsubscribed" in page and "now</button>" not in page


def test_contact_page_edit_attributes_tags_and_consent_with_its_audit_line(client):
    clock.freeze(datetime(2026, 12, 2, 10, 0))
    partner, user = signed_in(client)
    contact = make_contact(partner, email="bo@example.com", consent=False, first_name="Bo",
                           attributes={"city": "Oslo", "segment": "retail"})
    page = text(client.get(f"/partner/contacts/{contact.id}"))
    assert "No consent to email" in page and 'value="Oslo"' in page and 'value="segment"' in page
    token = page_token(client, f"/partner/contacts/{contact.id}")
    saved = client.post(f"/partner/contacts/{contact.id}", data={
        "csrf_token": token, "email": "bo@example.com", "first_name": "Bob", "last_name": "Ray",
        "tags": "VIP, newsletter", "attr-0-key": "city", "attr-0-value": "Bergen",
        "attr-1-key": "segment", "attr-1-value": "", "attr-2-key": "plan",
        "attr-2-value": "gold"})
    assert saved.status_code == 302
    db.session.refresh(contact)
    assert (contact.first_name, contact.attributes) == ("Bob", {"city": "Bergen",
                                                                "plan": "gold"})
    from campaigns.contacts import tags_of

    assert tags_of([contact.id])[contact.id] == ["newsletter", "vip"]
    # Invalid input is shown inline and changes nothing.
    bad = client.post(f"/partner/contacts/{contact.id}", data={
        "csrf_token": token, "email": "not an address", "first_name": "X", "tags": "a\tb",
        "attr-0-key": "", "attr-0-value": "orphan"})
    assert bad.status_code == 422
    html = text(bad)
    assert 'class="field-error"' in html and "orphan" in html
    db.session.refresh(contact)
    assert contact.first_name == "Bob"

    given = client.post(f"/partner/contacts/{contact.id}/consent", data={
        "csrf_token": token, "consent": "yes", "consent_note": "Signed the paper form"})
    assert given.status_code == 302 and given.headers["Location"].endswith("#consent")
    page = text(client.get(f"/partner/contacts/{contact.id}"))
    assert ("Consent given by Ann Advisor on 2 Dec 2026 via the contact form. "
            "<q>Signed the paper form</q>") in page
    assert "Can be emailed" in page
    events = list(db.session.scalars(select(ConsentEvent)
                                     .where(ConsentEvent.contact_id == contact.id)))
    assert [(e.source, e.consent, e.user_id) for e in events] == [("form", True, user.id)]
    # The same choice again changes nothing and says so.
    again = client.post(f"/partner/contacts/{contact.id}/consent", data={
        "csrf_token": token, "consent": "yes"})
    assert again.status_code == 422 and "already agreed" in text(again)
    assert client.post(f"/partner/contacts/{contact.id}/consent",
                       data={"csrf_token": token}).status_code == 422
    clock.advance(days=1)
    client.post(f"/partner/contacts/{contact.id}/consent", data={
        "csrf_token": token, "consent": "no", "consent_note": "Asked by phone"})
    page = text(client.get(f"/partner/contacts/{contact.id}"))
    assert page.index("Consent withdrawn by Ann Advisor on 3 Dec 2026") < page.index(
        "Consent given by Ann Advisor on 2 Dec 2026")  # newest first


def test_create_from_the_list_records_consent_and_opens_the_contact(client):
    partner, user = signed_in(client)
    token = page_token(client, "/partner/contacts")
    response = client.post("/partner/contacts", data={
        "csrf_token": token, "email": "New@Example.com", "first_name": "Nia", "consent": "on",
        "consent_note": "Newsletter sign-up at the fair", "tags": "fair"})
    contact = db.session.scalar(select(Contact).where(Contact.email == "new@example.com"))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/partner/contacts/{contact.id}")
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.contact_id == contact.id))
    assert (event.source, event.detail, event.user_id) == (
        "form", "Newsletter sign-up at the fair", user.id)
    bad = client.post("/partner/contacts", data={"csrf_token": token, "email": "x@example.com",
                                                 "tags": ",".join(f"t{i}" for i in range(60))})
    assert bad.status_code == 422 and "at most 50 tags" in text(bad)


def test_timeline_on_the_contact_page(client):
    partner, _user = signed_in(client)
    campaign = make_tracked_campaign(partner=partner, steps=2)
    send = make_sent_message(campaign, email="reader@example.com")
    from tracking import ingest

    ingest.apply_hits([ingest.Hit("open", send.id, clock.now(), None,
                                  "Mozilla/5.0 (X11) Chrome/124.0", "203.0.113.1"),
                       ingest.Hit("open", send.id, clock.now(), None,
                                  "Mozilla/5.0", "17.58.1.2")])  # Apple MPP prefetch
    db.session.commit()
    page = text(client.get(f"/partner/contacts/{send.contact_id}"))
    assert "Messages and engagement <small>(1)</small>" in page
    row = re.search(rf'<tr data-message="{send.id}">(.*?)</tr>', page).group(1)
    assert "step 1" in row and "Sent" in row
    assert "1 by people" in row and "1 by machines" in row


def test_delete_asks_first_then_erases(client):
    partner, _user = signed_in(client)
    campaign = make_tracked_campaign(partner=partner)
    send = make_sent_message(campaign, email="leaver@example.com")
    suppression.suppress_email("leaver@example.com", "unsubscribed")
    confirm = text(client.get(f"/partner/contacts/{send.contact_id}/delete"))
    assert "This cannot be undone" in confirm and "leaver@example.com" in confirm
    assert "1 message already sent to them stays counted" in confirm
    assert "scrambled form of the address" in confirm
    assert db.session.get(Contact, send.contact_id) is not None  # asking changed nothing
    token = page_token(client, f"/partner/contacts/{send.contact_id}/delete")
    done = client.post(f"/partner/contacts/{send.contact_id}/delete",
                       data={"csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith("/partner/contacts")
    db.session.expire_all()
    assert db.session.get(Send, send.id).contact_id is None
    assert "was deleted" in text(client.get("/partner/contacts"))
    assert client.get(f"/partner/contacts/{send.contact_id}").status_code == 404


def test_another_partners_contact_pages_answer_404(client):
    owner = make_partner(tier="gold")
    contact = make_contact(owner)
    _partner, _user = signed_in(client)
    token = page_token(client, "/partner/contacts")
    for path in (f"/partner/contacts/{contact.id}", f"/partner/contacts/{contact.id}/delete"):
        assert client.get(path).status_code == 404, path
    for path, data in ((f"/partner/contacts/{contact.id}", {"email": "x@example.com"}),
                       (f"/partner/contacts/{contact.id}/consent", {"consent": "no"}),
                       (f"/partner/contacts/{contact.id}/delete", {})):
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 404, path
    db.session.refresh(contact)
    assert contact.consent is True and contact.email != "x@example.com"
    assert db.session.get(Contact, contact.id) is not None
