"""The delivery pipeline end to end: ledger, scheduler, RQ workers, a real SMTP server."""

from __future__ import annotations

import re

import pytest
import redis
from sqlalchemy import delete, select

from campaigns import ledger, lifecycle, sending, suppression
from campaigns.models import Campaign, Send
from campaigns.suppression import exclusion_reason
from campaigns.worker import run_embedded
from core import clock, tokens
from core.db import db
from delivery import backends
from journeys.models import JourneyStep, TemplateVersion
from personalization.lock import check_locked_regions
from tests.test_pipeline_support import (
    T0,
    campaign_status,
    configured,
    drain,
    launch_campaign,
    smtp_server,
    statuses,
)
from tracking import services as tracking_services
from tracking.models import Event


@pytest.fixture
def smtp(app):
    """A recording SMTP server on loopback with the app delivering to it."""
    with smtp_server() as (recorder, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
        BRAND_NAME="Acme Financial", BRAND_FROM_EMAIL="news@acme.example",
    ):
        yield recorder

    backends.drop_backend()  # jobs keep their connection for the next batch; close it


def _html_and_text(message) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    # MIME carries text with CRLF line ends (canonical form); the template was stored with LF.
    return html.replace("\r\n", "\n"), text.replace("\r\n", "\n")


def test_message_ids_are_random_and_the_send_id_travels_in_its_own_header(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(20)
    drain(app)
    sends = {s.id: s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id)).scalars()}
    ids = set()
    for message in smtp.parsed():
        send = sends[int(message["X-Lastmile-Send-Id"])]
        message_id = str(message["Message-ID"])
        # 128 random bits: another deployment or a restored database never repeats one.
        assert re.fullmatch(r"<lm\.[0-9a-f]{32}@acme\.example>", message_id), message_id
        assert send.provider_message_id == message_id.strip("<>")  # kept for correlation
        ids.add(message_id)
    assert len(ids) == len(sends) == 20


def test_three_step_journey_reaches_every_contact_once_per_step(app, smtp, monkeypatch):
    clock.freeze(T0)
    launched = launch_campaign(50, steps=[(0, "always"), (24, "always"), (48, "always")])
    assert campaign_status(launched.campaign_id)[0] == "running"

    drain(app)
    assert smtp.count() == 50
    clock.advance(hours=23)
    drain(app)
    assert smtp.count() == 50  # step 1 is due 24 h after step 0 was sent, not before
    clock.advance(hours=1)
    drain(app)
    assert smtp.count() == 100
    clock.advance(hours=47)
    drain(app)
    assert smtp.count() == 100
    clock.advance(hours=1)
    drain(app)
    assert smtp.count() == 150
    assert statuses(launched.campaign_id) == {"sent": 150}
    drain(app)  # one more tick notices nothing is left
    assert campaign_status(launched.campaign_id)[0] == "completed"

    sends = {s.id: s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id)).scalars()}
    names = {c.id: c.first_name for c in launched.contacts}
    versions = {v: db.session.get(TemplateVersion, v) for v in launched.version_ids}
    seen = smtp.send_ids()
    assert set(seen) == set(sends) and set(seen.values()) == {1}
    for message in smtp.parsed():
        send = sends[int(message["X-Lastmile-Send-Id"])]
        assert str(message["To"]) == send.email
        assert message["From"].addresses[0].display_name == "Dana Advisor via Acme Financial"
        assert message["From"].addresses[0].addr_spec == "news@acme.example"
        assert message["Reply-To"].addresses[0].addr_spec == "dana@harbor.example"
        unsubscribe = str(message["List-Unsubscribe"])
        assert "<http://lastmile.test/u/" in unsubscribe and "<mailto:" in unsubscribe
        assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        assert message["Message-ID"] and send.provider_message_id
        html, text = _html_and_text(message)
        first_name = names[send.contact_id]
        assert f"Dear {first_name}," in html and first_name in text
        assert str(message["Subject"]) == f"Step {send.step_index} for {first_name}"
        # The sent HTML (tracked links, pixel, unsubscribe token) keeps every locked region.
        assert check_locked_regions(versions[send.template_version_id], html) == []
        assert "http://lastmile.test/t/c/" in html and "http://lastmile.test/t/o/" in html
        # The header's one-click URL is the very link in the footer.
        header_url = unsubscribe.split("<", 1)[1].split(">", 1)[0]
        assert f'href="{header_url}"' in html
    # Every sent row holds its message's link targets, so a click never renders the mail.
    assert {tuple(s.link_targets) for s in sends.values()} == {("https://brand.example/book",)}

    def refuse(*_args, **_kwargs):
        raise AssertionError("a click rendered the message")

    monkeypatch.setattr(sending, "render_message", refuse)
    monkeypatch.setattr(tracking_services, "compose_message", refuse)
    links_cache = redis.Redis.from_url(app.config["REDIS_URL"])
    assert links_cache.keys("lastmile:links:*") == []  # the worker caches nothing: a cold click
    # A click on a delivered link leads exactly where the message's link pointed.
    html, _ = _html_and_text(smtp.parsed()[0])
    click = re.search(r'href="http://lastmile\.test(/t/c/[^"]+)"', html).group(1)
    response = app.test_client().get(click, headers={"User-Agent": "Mozilla/5.0 (X11)"})
    # ...with the click's id appended for the brand's site to report conversions with.
    landing, _, click_id = response.headers["Location"].partition("?lm_click=")
    assert (response.status_code, landing) == (302, "https://brand.example/book")
    assert tokens.read_token(app.config["SECRET_KEY"], "clickid", click_id) is not None
    # Step k+1 was due exactly delay hours after step k went out.
    by_key = {(s.contact_id, s.step_index): s for s in sends.values()}
    for (contact_id, step), send in by_key.items():
        if step:
            previous = by_key[(contact_id, step - 1)]
            assert send.due_at == previous.sent_at + ledger.timedelta(hours=24 * step)


def test_unsubscribe_between_queueing_and_claiming_is_suppressed_not_mailed(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(5)
    gone, no_consent = launched.contacts[0], launched.contacts[1]
    suppression.suppress_email(gone.email, "unsubscribed")
    no_consent.consent = False
    db.session.commit()

    drain(app)
    rows = {s.contact_id: s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id)).scalars()}
    assert (rows[gone.id].status, rows[gone.id].status_reason) == ("suppressed", "unsubscribed")
    assert (rows[no_consent.id].status, rows[no_consent.id].status_reason) == (
        "suppressed", "no_consent")
    mailed = {str(m["To"]) for m in smtp.parsed()}
    assert mailed == {c.email for c in launched.contacts[2:]}


CONDITION_CASES = {
    # contacts: A opened, B clicked, C only machine engagement, D nothing
    "opened": {"A", "B"},
    "not_opened": {"C", "D"},
    "clicked": {"B"},
    "not_clicked": {"A", "C", "D"},
}


@pytest.mark.parametrize("condition", sorted(CONDITION_CASES))
def test_step_conditions_read_human_engagement_of_the_previous_step(app, smtp, condition):
    clock.freeze(T0)
    launched = launch_campaign(4, steps=[(0, "always"), (24, condition), (24, "always")])
    drain(app)
    label = dict(zip("ABCD", launched.contacts, strict=True))
    step0 = {s.contact_id: s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id, Send.step_index == 0)
    ).scalars()}

    def event(who: str, kind: str, machine: bool = False) -> Event:
        send = step0[label[who].id]
        return Event(send_id=send.id, kind=kind, machine=machine, link_index=0,
                     campaign_id=send.campaign_id, step_index=0, occurred_at=clock.now(),
                     machine_reason="prefetch" if machine else "")

    db.session.add_all([event("A", "open"), event("B", "click"),
                        event("C", "open", machine=True), event("C", "click", machine=True)])
    db.session.commit()

    clock.advance(hours=24)
    drain(app)
    rows = {(s.contact_id, s.step_index): s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id)).scalars()}
    sent_step1 = {w for w, c in label.items() if rows[(c.id, 1)].status == "sent"}
    assert sent_step1 == CONDITION_CASES[condition]
    for who in set("ABCD") - sent_step1:
        assert rows[(label[who].id, 1)].status_reason == f"condition:{condition}"
    # A skipped step does not end the path: step 2 follows for everyone, timed from the skip.
    clock.advance(hours=24)
    drain(app)
    assert statuses(launched.campaign_id)["sent"] == 4 + len(sent_step1) + 4
    step1_mail = [m for m in smtp.parsed() if str(m["Subject"]).startswith("Step 1")]
    assert {str(m["To"]) for m in step1_mail} == {label[w].email for w in sent_step1}


def test_one_refused_recipient_fails_alone(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(10)
    refused = launched.contacts[3]
    smtp.refuse[refused.email] = "550 5.1.1 No such user here"
    drain(app, batch_size=200)
    rows = {s.contact_id: s for s in db.session.execute(
        select(Send).where(Send.campaign_id == launched.campaign_id)).scalars()}
    assert rows[refused.id].status == "failed"
    assert "550" in rows[refused.id].last_error
    assert statuses(launched.campaign_id) == {"sent": 9, "failed": 1}
    assert {str(m["To"]) for m in smtp.parsed()} == {
        c.email for c in launched.contacts if c.id != refused.id}
    # "No such user" is a hard bounce: the address is suppressed brand-wide.
    assert exclusion_reason(refused) == "bounced"
    assert exclusion_reason(launched.contacts[0]) is None


def test_policy_rejection_fails_without_suppressing(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(3)
    refused = launched.contacts[1]
    smtp.refuse[refused.email] = "554 5.7.1 Message rejected by policy"
    drain(app, batch_size=200)
    assert statuses(launched.campaign_id) == {"sent": 2, "failed": 1}
    assert exclusion_reason(refused) is None


def test_rate_limits_hold_rows_back_without_failing_them(app, smtp):
    clock.freeze(T0)
    first = launch_campaign(10, prefix="a")
    second = launch_campaign(10, prefix="b")
    with configured(app, RATE_LIMIT_PARTNER="3", RATE_LIMIT_GLOBAL="5"):
        drain(app)
        per_window = []
        while smtp.count() < 20 and len(per_window) < 10:
            before = smtp.count()
            clock.advance(seconds=1)
            drain(app)
            per_window.append(smtp.count() - before)
    assert smtp.count() == 20
    assert all(n <= 5 for n in per_window)
    counts = statuses(first.campaign_id) + statuses(second.campaign_id)
    assert counts == {"sent": 20}
    assert set(smtp.send_ids().values()) == {1}


def test_cancel_stops_queued_sends(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(6, steps=[(0, "always"), (24, "always")])
    drain(app)
    campaign = lifecycle.get_campaign(launched.campaign_id)
    lifecycle.cancel_campaign(campaign)
    clock.advance(hours=25)
    drain(app)
    assert smtp.count() == 6
    assert statuses(launched.campaign_id) == {"sent": 6, "cancelled": 6}


def test_embedded_mode_delivers_without_redis(app, smtp):
    clock.freeze(T0)
    launched = launch_campaign(12, steps=[(0, "always"), (2, "always")])
    with configured(app, REDIS_URL=""):
        totals = run_embedded(app, burst=True, interval=0.01, batch_size=5)
        assert totals.get("sent") == 12
        clock.advance(hours=2)
        run_embedded(app, burst=True, interval=0.01, batch_size=5)
    assert smtp.count() == 24
    assert set(smtp.send_ids().values()) == {1}
    assert campaign_status(launched.campaign_id)[0] == "completed"


def test_a_batch_over_its_time_budget_hands_untried_rows_back(app, smtp):

    clock.freeze(T0)
    launched = launch_campaign(25)
    counts = sending.deliver_due(limit=25, time_budget=0)
    # The first commit group went out; the rest were released untried, with no attempt spent.
    assert counts["sent"] == sending.COMMIT_EVERY
    assert counts["released"] == 25 - sending.COMMIT_EVERY
    assert smtp.count() == sending.COMMIT_EVERY
    released = db.session.execute(select(Send).where(
        Send.campaign_id == launched.campaign_id, Send.status == "queued")).scalars().all()
    assert len(released) == 25 - sending.COMMIT_EVERY
    assert {s.attempts for s in released} == {0}
    assert {s.lease_expires_at for s in released} == {None}
    drain(app)
    assert statuses(launched.campaign_id) == {"sent": 25}
    assert smtp.count() == 25


def test_sent_mail_carries_a_hidden_honeypot_that_only_machines_follow(app, smtp):
    import redis

    from tracking import ingest

    clock.freeze(T0)
    launched = launch_campaign(1)
    drain(app)
    html, _text = _html_and_text(smtp.parsed()[0])
    hidden = re.findall(r'<a\s+href="([^"]+)"\s+style="display:none"\s+aria-hidden="true"', html)
    assert len(hidden) == 1
    path = hidden[0].split("://", 1)[1].split("/", 1)[1]
    response = app.test_client().get("/" + path, headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert response.status_code == 200 and "Location" not in response.headers
    ingest.drain_all(redis.Redis.from_url(app.config["REDIS_URL"]))
    (event,) = db.session.execute(select(Event).where(Event.kind == "click")).scalars()
    assert (event.machine, event.machine_reason) == (True, "honeypot_link")
    assert event.send_id == db.session.scalar(
        select(Send.id).where(Send.campaign_id == launched.campaign_id))


def test_a_campaign_that_cannot_start_is_cancelled_and_blocks_nothing(app, smtp):
    clock.freeze(T0)
    broken = launch_campaign(2, prefix="broken")
    good = launch_campaign(2, prefix="good")
    # Simulate a journey whose first step lost its pinned version; both back to scheduled.
    for launched in (good, broken):
        campaign = db.session.get(Campaign, launched.campaign_id)
        campaign.status = "scheduled"
        db.session.execute(delete(Send).where(Send.campaign_id == launched.campaign_id))
    step = db.session.scalar(select(JourneyStep).where(JourneyStep.journey_id == broken.journey_id))
    step.template_version_id = None
    db.session.commit()
    assert ledger.start_scheduled_campaigns(limit=1) == 0  # the broken one comes first
    assert campaign_status(broken.campaign_id)[0] == "cancelled"
    assert "Could not start" in campaign_status(broken.campaign_id)[1]
    assert ledger.start_scheduled_campaigns(limit=1) == 1
    drain(app)
    assert statuses(good.campaign_id) == {"sent": 2}


def test_a_job_killed_mid_chunk_hands_untried_rows_back(app, smtp, monkeypatch):

    class JobKilled(BaseException):
        """Stands in for RQ's job timeout, raised inside delivery."""

    clock.freeze(T0)
    launched = launch_campaign(25)
    backend = backends.delivery_backend(app.config)  # the real SMTP backend, kept by the job
    real_deliver, calls = backend.deliver, []

    def deliver_then_die(messages):
        calls.append(len(messages))
        if len(calls) == 2:
            raise JobKilled
        return real_deliver(messages)

    monkeypatch.setattr(backend, "deliver", deliver_then_die)
    with pytest.raises(JobKilled):
        sending.deliver_due(limit=25)
    rows = db.session.execute(select(Send).where(
        Send.campaign_id == launched.campaign_id).order_by(Send.id)).scalars().all()
    by_status = {s: [r for r in rows if r.status == s] for s in ("sent", "claimed", "queued")}
    n = sending.COMMIT_EVERY
    # First chunk recorded; the chunk in flight stays claimed (its fate is unknown until the
    # lease expires); the rest went straight back to the queue without spending an attempt.
    assert len(by_status["sent"]) == n and smtp.count() == n
    assert len(by_status["claimed"]) == n
    assert len(by_status["queued"]) == 25 - 2 * n
    assert {r.attempts for r in by_status["queued"]} == {0}
