"""Benchmark: audience filters over 100k contacts (count + first page), beside a plain count.

Run: python bench/audiences.py [contacts]. Uses PostgreSQL database `lastmile_bench_audiences`
(or $BENCH_AUDIENCES_DB), dropped and created afresh; `bench/run_all.py` runs it with the other
benches. Fills one partner with N contacts (a second partner with N/5 shares the table)
carrying a city, an age and a renewal date as attributes, one in five tagged `vip`, one in
seven without consent and one address in 37 unsubscribed, then times each filter as
`campaigns.audiences.find_contacts` runs it for `GET /api/contacts?filter=...` (the first page
of 50 with statuses, and the total) — the median of five runs — beside the baseline
`SELECT count(*)` over the partner's contacts, measured in the same run. The header prints
the load average. The target is under 200 ms per filter.
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
DB_NAME = os.environ.get("BENCH_AUDIENCES_DB", "lastmile_bench_audiences")
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
TARGET_MS = 200

FILTERS = {
    "tag vip": {"tags": ["vip"]},
    "status mailable": {"status": "mailable"},
    "status unsubscribed": {"status": "unsubscribed"},
    "text q=user1234": {"q": "user1234"},
    "city = Boston": {"attributes": {"city": "Boston"}},
    "city contains 'bos'": {"attributes": {"city": {"contains": "bos"}}},
    "age > 40 (number)": {"attributes": {"age": {"gt": 40}}},
    "renewal before 2027-01-01": {"attributes": {"renewal": {"before": "2027-01-01"}}},
    "vip + mailable + age 40..65 + city": {
        "tags": ["vip"], "status": "mailable",
        "attributes": {"age": {"gte": 40, "lte": 65}, "city": {"contains": "o"}}},
}


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


FILL = """
INSERT INTO contacts (partner_id, email, first_name, last_name, attributes, consent,
                      consent_source, created_at, updated_at)
SELECT :p, 'user' || g || '@' || :domain, 'First' || g, 'Last' || (g % 1000),
       json_build_object(
         'city', (ARRAY['Boston','Lyon','Bergen','Austin','Porto','Oslo','Denver','Bonn',
                        'Toronto','Dublin'])[1 + g % 10],
         'age', (18 + g % 73)::text,
         'renewal', to_char(DATE '2026-01-01' + (g % 730), 'YYYY-MM-DD')),
       g % 7 <> 0, '', now(), now()
FROM generate_series(1, :n) g
"""


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    reset_database()
    os.environ["LASTMILE_INSTANCE"] = tempfile.mkdtemp()
    from sqlalchemy import func, select, text

    from accounts import lists
    from accounts import services as accounts
    from app import create_app
    from campaigns import audiences
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
        other = accounts.create_partner(name="Other", tier="gold", region="west")
        db.session.execute(text(FILL), {"p": partner.id, "n": rows, "domain": "example.org"})
        db.session.execute(text(FILL), {"p": other.id, "n": rows // 5, "domain": "other.org"})
        db.session.execute(text(
            "INSERT INTO contact_tags (contact_id, tag, partner_id) SELECT id, 'vip', "
            "partner_id FROM contacts WHERE id % 5 = 0"))
        db.session.execute(text(
            "INSERT INTO suppressions (email, email_hash, reason, detail, created_at) "
            "SELECT e, encode(sha256(convert_to(:prefix || e, 'UTF8')), 'hex'), "
            "'unsubscribed', '', now() FROM (SELECT 'user' || g || '@example.org' AS e "
            "FROM generate_series(1, :n, 37) g) s"), {"prefix": PREFIX, "n": rows})
        db.session.commit()
        db.session.execute(text("ANALYZE"))
        db.session.commit()

        def baseline() -> None:
            db.session.scalar(select(func.count()).select_from(Contact)
                              .where(Contact.partner_id == partner.id))

        def run(audience: dict):  # noqa: ANN202
            cleaned = audiences.clean_filter(audience)
            return lambda: audiences.find_contacts(partner.id, [cleaned], 1, 50)

        baseline()
        base = median_ms(baseline)
        figures = {}
        for name, audience in FILTERS.items():
            run(audience)()  # warm up the statement cache
            figures[name] = (median_ms(run(audience)),
                             audiences.count_audience(partner.id,
                                                      [audiences.clean_filter(audience)]))
        db.session.remove()
        db.engine.dispose()
    print(f"audience filters, {rows:,} contacts of one partner, PostgreSQL, count + first "
          f"page of 50 (median of 5; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores):")
    print(f"  baseline, SELECT count(*) of the partner's contacts: {base:8.1f} ms")
    slow = []
    for name, (ms, matched) in figures.items():
        print(f"  {name:<36} {ms:8.1f} ms  ({ms / base:4.1f}x the baseline, "
              f"{matched:,} match)")
        if ms >= TARGET_MS:
            slow.append(name)
    print(f"  target: under {TARGET_MS} ms each: "
          + ("met" if not slow else "MISSED by " + ", ".join(slow)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
