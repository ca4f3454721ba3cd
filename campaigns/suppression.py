"""The brand-wide suppression list: addresses that are never mailed again, and why.

Every check matches on `email_hash` (campaigns.digest), never on the plain address: erasing a
contact removes the plain address from its suppression and the hash alone keeps the address
suppressed if it is ever imported again. Each check is one query.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaigns.consent import record_suppressed_addresses
from campaigns.contacts import loose_email
from campaigns.digest import email_digest
from campaigns.models import SUPPRESSION_REASONS, Contact, Suppression
from core import clock
from core.db import db


def suppress_email(email: str, reason: str, detail: str = "") -> bool:
    """Add an address to the brand-wide suppression list (idempotent); True if newly added."""
    added = add_suppressions([email], reason, detail) > 0
    db.session.commit()
    return added


def add_suppressions(emails: list[str], reason: str, detail: str = "") -> int:
    """Suppress addresses inside the caller's transaction (no commit); return how many are new.

    Each newly suppressed address is recorded in the consent history of every contact that
    has it (campaigns.consent); an address already suppressed changes nothing.
    """
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    keys = sorted({k for k in (loose_email(e) for e in emails) if k})
    if not keys:
        return 0
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    now = clock.now()
    # ON CONFLICT DO NOTHING keeps it idempotent even when two webhooks race for one address,
    # and an erased address (hash only) stays as it is.
    stmt = dialect.insert(Suppression.__table__).values(
        [{"email": k, "email_hash": email_digest(k), "reason": reason,
          "detail": (detail or "")[:2000], "created_at": now} for k in keys]
    ).on_conflict_do_nothing().returning(Suppression.__table__.c.email)
    added = [row[0] for row in db.session.execute(stmt).all()]
    record_suppressed_addresses(added, reason, detail)
    return len(added)


def suppression_reasons(emails: list[str]) -> dict[str, str]:
    """Return {normalized email: suppression reason} for those of `emails` that are suppressed."""
    by_hash = {email_digest(k): k for k in {loose_email(e) for e in emails}}
    hashes = list(by_hash)
    found: dict[str, str] = {}
    for start in range(0, len(hashes), 5000):
        batch = hashes[start:start + 5000]
        for digest, reason in db.session.execute(
            select(Suppression.email_hash, Suppression.reason)
            .where(Suppression.email_hash.in_(batch))
        ).all():
            found[by_hash[digest]] = reason
    return found


def exclusion_reason(contact: Contact) -> str | None:
    """Return why a contact must not be mailed (a suppression reason or no_consent)."""
    reason = db.session.scalar(
        select(Suppression.reason)
        .where(Suppression.email_hash == email_digest(loose_email(contact.email)))
    )
    if reason:
        return reason
    if not contact.consent:
        return "no_consent"
    return None


def forget_address(email: str) -> bool:
    """Keep an erased address's suppression (if any) as its hash only; tell if it had one."""
    result = db.session.execute(
        update(Suppression)
        .where(Suppression.email_hash == email_digest(loose_email(email)))
        .values(email=None)
    )
    return bool(result.rowcount)
