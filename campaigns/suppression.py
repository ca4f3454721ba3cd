"""The brand-wide suppression list: addresses that are never mailed again, and why."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from campaigns.contacts import loose_email
from campaigns.models import SUPPRESSION_REASONS, Contact, Suppression
from core import clock
from core.db import db


def suppress_email(email: str, reason: str, detail: str = "") -> bool:
    """Add an address to the brand-wide suppression list (idempotent); True if newly added."""
    added = add_suppressions([email], reason, detail) > 0
    db.session.commit()
    return added


def add_suppressions(emails: list[str], reason: str, detail: str = "") -> int:
    """Suppress addresses inside the caller's transaction (no commit); return how many are new."""
    if reason not in SUPPRESSION_REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    keys = sorted({k for k in (loose_email(e) for e in emails) if k})
    if not keys:
        return 0
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    now = clock.now()
    # ON CONFLICT DO NOTHING keeps it idempotent even when two webhooks race for one address.
    stmt = dialect.insert(Suppression.__table__).values(
        [{"email": k, "reason": reason, "detail": (detail or "")[:2000], "created_at": now}
         for k in keys]
    ).on_conflict_do_nothing(index_elements=["email"]).returning(Suppression.__table__.c.id)
    return len(db.session.execute(stmt).all())


def suppression_reasons(emails: list[str]) -> dict[str, str]:
    """Return {normalized email: suppression reason} for those of `emails` that are suppressed."""
    keys = list({loose_email(e) for e in emails})
    found: dict[str, str] = {}
    for start in range(0, len(keys), 5000):
        batch = keys[start:start + 5000]
        found.update(db.session.execute(
            select(Suppression.email, Suppression.reason).where(Suppression.email.in_(batch))
        ).all())
    return found


def exclusion_reason(contact: Contact) -> str | None:
    """Return why a contact must not be mailed (a suppression reason or no_consent)."""
    reason = db.session.scalar(
        select(Suppression.reason).where(Suppression.email == loose_email(contact.email))
    )
    if reason:
        return reason
    if not contact.consent:
        return "no_consent"
    return None
