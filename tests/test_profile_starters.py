"""The starter templates' signature block reads the partner profile, and degrades gracefully."""

from __future__ import annotations

import re

import pytest

from accounts.models import Partner
from journeys.cli import load_starters
from personalization.lock import check_escaped_outputs, check_locked_regions
from personalization.render import render_message
from tests.profile_helpers import publish_starter

CONTACT = {"email": "ann@example.org", "first_name": "Ann", "last_name": "Lee", "attributes": {}}
BRAND = {"name": "Acme Financial", "from_email": "news@acme.example"}
FULL = Partner(name="Northside Advisors LLC", tier="gold", region="north",
               display_name="Northside Advisors", advisor_name="Ann Northcott",
               title="Senior Financial Advisor", photo_url="https://cdn.brand.example/ann.jpg",
               logo_url="https://cdn.brand.example/northside.png",
               signature="Warm regards,\nAnn", phone="+1 555 0100",
               address="1 North Street, Springfield", website="https://northside.example",
               disclosures="Securities offered through Example Securities, member FINRA/SIPC.")
EMPTY = Partner(name="Northside Advisors", tier="gold", region="north")
STARTERS = [entry["key"] for entry in load_starters()]


def _signature(html: str) -> str:
    start = html.index('class="signature"')
    return html[start:html.index("</table>", start)]


def _render(version, partner: Partner, sender_name: str):
    sender = {"name": sender_name, "reply_to": "ann@northside.example"}
    return render_message(version, {}, CONTACT, partner.template_context(), sender, BRAND)


@pytest.mark.parametrize("key", STARTERS)
def test_a_starter_signs_with_the_full_profile(app, key):
    version = publish_starter(key)
    shown = _render(version, FULL, "Ann Northcott")
    signature = _signature(shown.html)
    for value in ("Ann Northcott", "Senior Financial Advisor", "Northside Advisors",
                  "+1 555 0100", "https://northside.example", "Warm regards,\nAnn"):
        assert value in signature, value
    assert 'src="https://cdn.brand.example/ann.jpg"' in signature
    assert 'width="72px"' in signature or 'width="72"' in signature
    assert 'src="https://cdn.brand.example/northside.png"' in signature
    assert "Securities offered through Example Securities" in shown.html
    assert "1 North Street, Springfield" in shown.html
    assert "Ann Northcott" in shown.text and "Example Securities" in shown.text
    assert not check_locked_regions(version, shown.html)
    assert not check_escaped_outputs(version, shown.html)


@pytest.mark.parametrize("key", STARTERS)
def test_a_starter_without_a_profile_shows_no_gaps_none_or_empty_images(app, key):
    version = publish_starter(key)
    # A campaign's sender defaults to the business name: it must not be printed twice.
    shown = _render(version, EMPTY, "Northside Advisors")
    for part in (shown.html, shown.text, shown.subject):
        assert "None" not in part
    signature = _signature(shown.html)
    assert re.sub(r"<[^>]*>", "", signature).count("Northside Advisors") == 1
    # Every image without a source is hidden and has no size: no empty box, no broken icon.
    for img in re.findall(r"<img\b[^>]*>", shown.html):
        if 'src=""' in img:
            assert "height:0" in img.replace(" ", "") and "display:block" in img
    hidden_cells = re.findall(r"<td\b[^>]*display:none[^>]*>", signature)
    assert len(hidden_cells) == 2 and all("mso-hide:all" in td for td in hidden_cells)
    assert "· <" not in shown.html.split("Unsubscribe")[0][-400:]  # no dangling "·" address
    assert not check_locked_regions(version, shown.html)
    # With a named sender and no advisor name, the sender signs.
    assert "Pat Partner" in _signature(_render(version, EMPTY, "Pat Partner").html)


def test_import_starters_update_adds_a_version_to_changed_starters_only(app):
    from journeys import services as journeys
    from tests.builders import DEFAULT_SLOTS, template_mjml

    old = journeys.create_template("Welcome", "Hi", "", template_mjml(DEFAULT_SLOTS),
                                   DEFAULT_SLOTS)
    journeys.publish_template(old.template_id)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["templates", "import-starters", "--update"])
    assert first.exit_code == 0, first.output
    assert f"welcome: template {old.template_id} (new version 2)" in first.output
    assert first.output.count("new version") == 1  # the others were imported just now
    latest = journeys.published_version(old.template_id)
    assert latest.version == 2 and "partner.advisor_name" in latest.mjml
    again = runner.invoke(args=["templates", "import-starters", "--update"])
    assert again.exit_code == 0 and "new version" not in again.output
    assert journeys.latest_version(old.template_id).version == 2
