"""The product's own emails (invitations, password resets, reminders) from one MJML layout.

templates/emails/account/_layout.mjml is filled with translated words (autoescaped), then
compiled by MJML and CSS-inlined like a brand template; the plain-text twin comes from the
same HTML. Nothing here is tracked: these are transactional messages to one person.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template

from personalization.compile import compile_plain


@dataclass(frozen=True)
class AccountMail:
    subject: str
    html: str
    text: str


def render_account_mail(*, brand_name: str, subject: str, heading: str, paragraphs: list[str],
                        button_label: str = "", button_url: str = "", link_hint: str = "",
                        footnote: str = "", legal: str = "") -> AccountMail:
    """Render one account email; every argument is already translated text."""
    source = render_template("emails/account/_layout.mjml", brand_name=brand_name,
                             preview=paragraphs[0] if paragraphs else heading, heading=heading,
                             paragraphs=paragraphs, button_label=button_label,
                             button_url=button_url, link_hint=link_hint, footnote=footnote,
                             legal=legal)
    html, text = compile_plain(source)
    return AccountMail(subject=subject, html=html, text=text)
