"""Erasing a contact: the person's data goes, the brand's counts stay.

`erase_contact` deletes, in one transaction: the contact row (names, address, attributes),
its tags, its consent history and its campaign memberships (with their per-recipient
overrides). Its sends stay in the ledger so campaign and journey counts and the engagement
rollups do not change, but lose what identifies the person (campaigns.ledger.
forget_contact_sends); open ones are cancelled first. Tracking registers a hook (app.py, under
ERASURE_EXTENSION) that strips the IP address and user agent from those sends' events and
drops their cached link targets.

If the address was suppressed (unsubscribed, bounced, complained) the suppression stays, as
the hash of the address only: imported again, by any partner, it is still never mailed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import current_app
from sqlalchemy import delete, func, select

from campaigns.ledger import forget_contact_sends
from campaigns.models import CampaignMember, ConsentEvent, Contact, ContactTag, Send
from campaigns.suppression import exclusion_reason, forget_address
from core.db import db

# app.extensions key: a list of callables(send_ids) run inside the erasing transaction.
ERASURE_EXTENSION = "lastmile.erasure_hooks"
ErasureHook = Callable[[Sequence[int]], None]


def erasure_preview(contact: Contact) -> dict:
    """Tell what erasing a contact would touch: campaigns, messages, and the status its kept
    suppression gives the address (None if it has none)."""
    campaigns = db.session.scalar(select(func.count()).select_from(CampaignMember)
                                  .where(CampaignMember.contact_id == contact.id)) or 0
    messages = db.session.scalar(select(func.count()).select_from(Send)
                                 .where(Send.contact_id == contact.id)) or 0
    reason = exclusion_reason(contact)
    status = {"no_consent": None, "manual": "suppressed"}.get(reason or "", reason)
    return {"campaigns": campaigns, "messages": messages, "suppressed": status}


def erase_contact(contact: Contact) -> dict:
    """Erase a contact (see the module); return what was kept: messages and suppression.

    409 while one of its messages is being delivered (try again in a few minutes).
    """
    db.session.execute(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    send_ids = forget_contact_sends(contact.id)
    for hook in current_app.extensions.get(ERASURE_EXTENSION, ()):
        hook(send_ids)
    suppressed = forget_address(contact.email)
    for model in (CampaignMember, ConsentEvent, ContactTag):
        db.session.execute(delete(model).where(model.contact_id == contact.id))
    db.session.execute(delete(Contact).where(Contact.id == contact.id))
    db.session.commit()
    return {"messages_kept": len(send_ids), "suppression_kept": suppressed}
