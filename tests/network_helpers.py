"""Reading the product's own emails (invitations, resets) back from the outbox in tests."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

LINK = re.compile(r"https?://\S+/(?:join|reset)/[A-Za-z0-9._-]+")


def mails_to(folder: Path, address: str) -> list:
    """Return the parsed messages to `address`, oldest first."""
    found = []
    for path in sorted(Path(folder).glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["To"] and address.lower() in str(message["To"]).lower():
            found.append(message)
    return found


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(message) -> str:
    """Return the join or reset link of a message (from its plain text)."""
    match = LINK.search(text_of(message))
    assert match, text_of(message)
    return match.group(0)


def token_of(message) -> str:
    return link_in(message).rsplit("/", 1)[1]
