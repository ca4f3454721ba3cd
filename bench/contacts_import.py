"""Benchmark: CSV contact import (validate, normalize, merge) against a raw bulk insert.

Run: python bench/contacts_import.py [rows]. Uses PostgreSQL database `lastmile_bench_import`
(created if missing). Prints rows/s for a first import (all new), a re-import (all updates)
and, as the baseline in the same run, a plain executemany INSERT of the same rows with no
validation or merging.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DB_NAME = "lastmile_bench_import"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def reset_database() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    engine.dispose()


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    reset_database()
    os.environ["LASTMILE_INSTANCE"] = tempfile.mkdtemp()
    from sqlalchemy import delete, insert

    from accounts import services as accounts
    from app import create_app
    from campaigns.contacts_import import import_contacts
    from campaigns.models import Contact
    from core import migrate
    from core.db import db

    app = create_app({"DATABASE_URL": URL, "REDIS_URL": "", "SECRET_KEY": "bench"})
    data = ("email,first_name,last_name,consent,city\n" + "".join(
        f"User{i}@Example.org,First{i},Last,yes,Town{i % 50}\n" for i in range(rows))).encode()
    with app.app_context():
        migrate.upgrade(URL)
        partner = accounts.create_partner(name="Bench", tier="gold", region="west")
        start = time.perf_counter()
        report = import_contacts(partner.id, io.BytesIO(data))
        first = time.perf_counter() - start
        assert report.created == rows, report.to_json()
        start = time.perf_counter()
        report = import_contacts(partner.id, io.BytesIO(data))
        again = time.perf_counter() - start
        assert report.updated == rows, report.to_json()

        db.session.execute(delete(Contact))
        db.session.commit()
        start = time.perf_counter()
        for offset in range(0, rows, 1000):
            db.session.execute(insert(Contact), [
                {"partner_id": partner.id, "email": f"user{i}@example.org",
                 "first_name": f"First{i}", "last_name": "Last", "consent": True,
                 "attributes": {"city": f"Town{i % 50}"}}
                for i in range(offset, min(rows, offset + 1000))])
        db.session.commit()
        raw = time.perf_counter() - start
        db.session.remove()
        db.engine.dispose()
    print(f"contacts import, {rows:,} rows ({len(data) / 1e6:.1f} MB CSV), PostgreSQL:")
    print(f"  first import (all new):   {rows / first:8,.0f} rows/s  ({first:.1f} s)")
    print(f"  re-import (all merged):   {rows / again:8,.0f} rows/s  ({again:.1f} s)")
    print(f"  baseline raw INSERT:      {rows / raw:8,.0f} rows/s  ({raw:.1f} s)")
    print(f"  import / baseline = {raw / first:.2f} (validation, normalization, merge, report)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
