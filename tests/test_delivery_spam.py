"""What mailbox filters see: every starter template's mail, as delivered over SMTP, through
SpamAssassin (Debian `spamassassin`, local tests only: `make test` installs it).

The check fails above 1.0 points, or on any header or MIME rule whatever its score: those
are about how we build mail, never about what a brand wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from campaigns import lifecycle, members
from campaigns.models import Contact
from core import clock
from core.db import db
from delivery import backends
from journeys import services as journeys
from journeys.cli import load_starters
from tests.builders import DEFAULT_SLOTS, make_partner, make_user, template_mjml
from tests.profile_helpers import publish_starter
from tests.test_pipeline_support import T0, configured, drain, smtp_server

MAX_SCORE = 1.0
# Rules named for the message's structure, whatever kind of rule tests them.
STRUCTURE_PREFIXES = ("MIME_", "MISSING_", "INVALID_", "HEADER_", "MSGID_", "DATE_")
# Rules about where the test captured the mail: the first relay adds a Received header.
CAPTURE_RULES = {"NO_RELAYS", "NO_RECEIVED"}
RULE_FILES = ("/usr/share/spamassassin", "/etc/spamassassin", "/var/lib/spamassassin")
PROFILE = {"display_name": "Northside Advisors", "advisor_name": "Ann Northcott",
           "title": "Senior Financial Advisor", "phone": "+1 555 0100",
           "address": "1 North Street, Springfield", "website": "https://northside.example",
           "signature": "Warm regards,\nAnn",
           "disclosures": "Securities offered through Example Securities, member FINRA/SIPC."}


def spamassassin() -> str:
    path = shutil.which("spamassassin")
    assert path, "spamassassin is not installed: run `make test` (it installs Debian's package)"
    return path


def header_rules() -> set[str]:
    """Names of the rules SpamAssassin tests against headers (`header`/`mimeheader` rules)."""
    names: set[str] = set()
    pattern = re.compile(r"^\s*(?:header|mimeheader)\s+([A-Z0-9_]+)\s", re.MULTILINE)
    for root in RULE_FILES:
        for path in Path(root).rglob("*.cf") if Path(root).is_dir() else ():
            names.update(pattern.findall(path.read_text(errors="replace")))
    assert names, "no SpamAssassin rule files found"
    return names


def score(message: bytes) -> tuple[float, dict[str, float]]:
    """Return SpamAssassin's score of a message and each rule that hit, with its points."""
    result = subprocess.run([spamassassin(), "-t", "-L"], input=message, capture_output=True,
                            timeout=120, check=False)
    out = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", out, re.MULTILINE)
    assert status, f"spamassassin gave no verdict: {result.stderr.decode()[-2000:]}"
    report = out.split("Content analysis details:", 1)[-1]
    rules = {name: float(points) for points, name in
             re.findall(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", report, re.MULTILINE)}
    return float(status.group(1)), rules


def launch_one(partner, user, marketer, key: str, template_id: int) -> None:
    """Publish a one-step journey of `template_id` and launch it to one contact, key@..."""
    journey = journeys.create_journey(
        name=f"Journey {key}", created_by=marketer.id,
        steps=[{"template_id": template_id, "delay_hours": 0, "when": "always"}])
    journeys.publish_journey(journey.id)
    contact = Contact(partner_id=partner.id, email=f"{key}@example.org", first_name="Ann",
                      last_name="Lee", consent=True, attributes={})
    db.session.add(contact)
    db.session.commit()
    campaign = lifecycle.create_campaign(partner, user, {
        "journey_id": journey.id, "name": f"Campaign {key}", "slot_values": {},
        "sender": {"name": "Ann Northcott", "reply_to": "ann@northside.example"}})
    members.add_members(campaign, [contact.id])
    lifecycle.launch_campaign(campaign)


def delivered(app, templates: dict[str, int]) -> dict[str, bytes]:
    """Send one message of each template (key -> template id) through the real pipeline and
    a real SMTP server, as a partner with a full profile; return the bytes received by key."""
    clock.freeze(T0)
    marketer, _ = make_user("brand_marketer")
    partner = make_partner(name="Northside Advisors LLC")
    for field, value in PROFILE.items():
        setattr(partner, field, value)
    user, _ = make_user("partner_admin", partner)
    db.session.commit()
    for key, template_id in templates.items():
        launch_one(partner, user, marketer, key, template_id)
    with smtp_server() as (smtp, port), configured(
        app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
        BRAND_NAME="Acme Financial", BRAND_FROM_EMAIL="news@acme.example",
        PUBLIC_BASE_URL="https://mail.acme.example",
    ):
        try:
            drain(app)
        finally:
            backends.drop_backend()
        with smtp.lock:
            raw = list(smtp.messages)
    by_key = {}
    for message in raw:
        to = re.search(rb"^To: .*?([a-z_]+)@example\.org", message, re.MULTILINE)
        assert to, message[:500]
        by_key[to.group(1).decode()] = message
    assert sorted(by_key) == sorted(templates)
    for key, message in by_key.items():
        if os.environ.get("LASTMILE_SPAM_DUMP"):  # to look at what was scored
            Path(os.environ["LASTMILE_SPAM_DUMP"], f"{key}.eml").write_bytes(message)
    return by_key


@pytest.mark.slow
def test_every_starter_templates_mail_passes_spamassassin(app):
    starters = {entry["key"]: publish_starter(entry["key"]).template_id
                for entry in load_starters()}
    messages = delivered(app, starters)
    structural = header_rules()
    problems = []
    for key, message in sorted(messages.items()):
        total, rules = score(message)
        bad = sorted(name for name in rules.keys() - CAPTURE_RULES
                     if name in structural or name.startswith(STRUCTURE_PREFIXES))
        if total > MAX_SCORE or bad:
            problems.append(f"{key}: score {total} (max {MAX_SCORE}), rules {rules}, "
                            f"header/MIME rules {bad}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_what_the_product_adds_to_every_mail_scores_nothing(app):
    # A plain template with a preheader: everything else in the message is the product's
    # (preheader markup, open pixel, honeypot link, unsubscribe link and headers, MIME).
    version = journeys.create_template(
        "Plain", "Your plans for {{ contact.first_name }}", "A short note from your advisor",
        template_mjml(DEFAULT_SLOTS), DEFAULT_SLOTS)
    journeys.publish_template(version.template_id)
    (message,) = delivered(app, {"plain": version.template_id}).values()
    assert b"/t/o/" in message and b"aria-hidden" in message  # pixel and honeypot are there
    total, rules = score(message)
    assert total <= 0 and not {n: p for n, p in rules.items() if p > 0}, rules
