"""Benchmark: one page of a partner's contacts with each contact's status (and a status filter).

Run: python bench/contacts_list.py [contacts]. Uses PostgreSQL database
`lastmile_bench_contacts_list` (created if missing). Fills one partner with N contacts (one in
seven without consent) and suppresses one address in 37, then times, each as the median of
five runs:

- the baseline: the page as the list read it before statuses (contacts only, and the count);
- the page with statuses (`search_contacts`: contacts outer-joined with the suppressions on
  the address hash) — what the list page and `GET /api/contacts` run;
- the same with `?status=unsubscribed` and `?status=mailable` (a join of every contact's
  generated `email_hash` with the suppressions).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DB_NAME = "lastmile_bench_contacts_list"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
PAGE, PER_PAGE = 200, 25


def reset_database() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    engine.dispose()


def median_ms(fn, runs: int = 5) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    reset_database()
    os.environ["LASTMILE_INSTANCE"] = tempfile.mkdtemp()
    from sqlalchemy import func, select, text

    from accounts import lists
    from accounts import services as accounts
    from app import create_app
    from campaigns import contacts
    from campaigns.digest import PREFIX
    from campaigns.models import Contact
    from core import migrate
    from core.db import db

    app = create_app({"DATABASE_URL": URL, "REDIS_URL": "", "SECRET_KEY": "bench"})
    with app.app_context():
        migrate.upgrade(URL)
        lists.add_name("tier", "gold")  # a partner's tier and region come from the brand's lists
        lists.add_name("region", "west")
        partner = accounts.create_partner(name="Bench", tier="gold", region="west")
        db.session.execute(text(
            "INSERT INTO contacts (partner_id, email, first_name, last_name, attributes, "
            "consent, consent_source, created_at, updated_at) SELECT :p, "
            "'user' || g || '@example.org', 'F', 'L', '{}', g % 7 <> 0, 'bench', now(), now() "
            "FROM generate_series(1, :n) g"),
            {"p": partner.id, "n": rows})
        db.session.execute(text(
            "INSERT INTO suppressions (email, email_hash, reason, detail, created_at) "
            "SELECT e, encode(sha256(convert_to(:prefix || e, 'UTF8')), 'hex'), "
            "'unsubscribed', '', now() FROM (SELECT 'user' || g || '@example.org' AS e "
            "FROM generate_series(1, :n, 37) g) s"), {"prefix": PREFIX, "n": rows})
        db.session.commit()
        db.session.execute(text("ANALYZE"))

        def baseline() -> None:
            where = Contact.partner_id == partner.id
            db.session.scalar(select(func.count()).select_from(Contact).where(where))
            db.session.scalars(select(Contact).where(where).order_by(Contact.id)
                               .limit(PER_PAGE).offset((PAGE - 1) * PER_PAGE)).all()

        def page(status: str | None = None):  # noqa: ANN202
            return lambda: contacts.search_contacts(partner.id, status=status, page=PAGE,
                                                    per_page=PER_PAGE)

        page()()  # warm up the statement caches
        base = median_ms(baseline)
        figures = {"with statuses": median_ms(page()),
                   "?status=unsubscribed": median_ms(page("unsubscribed")),
                   "?status=mailable": median_ms(page("mailable"))}
        db.session.remove()
        db.engine.dispose()
    print(f"contacts list, page {PAGE} of {PER_PAGE}, {rows:,} contacts, PostgreSQL "
          "(median of 5):")
    print(f"  baseline, contacts only:  {base:8.1f} ms")
    for name, ms in figures.items():
        print(f"  {name:<24} {ms:8.1f} ms  ({ms / base:.1f}x the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
