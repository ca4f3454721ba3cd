"""Benchmark: CSV contact import (parse, validate, stage with COPY, one merge) against raw COPY.

Run: python bench/contacts_import.py [rows]. Uses PostgreSQL database `lastmile_bench_import`
(or $BENCH_IMPORT_DB), dropped and created afresh. Prints rows/s for a first import (all new),
a re-import where every row changes (all merged), a dry run of that re-import (report only),
and, as the baseline in the same run, a raw `COPY` of the same, already normalized rows
straight into `contacts` (no parsing, validation, duplicate handling, report or merge). It also
prints the import's peak Python memory for a quarter of the rows and for all of them: the
file streams through, so the two should be about the same.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DB_NAME = os.environ.get("BENCH_IMPORT_DB", "lastmile_bench_import")
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def reset_database() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    engine.dispose()


def csv_bytes(rows: int, name: str = "First") -> bytes:
    return ("email,first_name,last_name,consent,city\n" + "".join(
        f"User{i}@Example.org,{name}{i},Last,yes,Town{i % 50}\n" for i in range(rows)
    )).encode()


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    reset_database()
    os.environ["LASTMILE_INSTANCE"] = tempfile.mkdtemp()
    from sqlalchemy import delete

    from accounts import lists
    from accounts import services as accounts
    from app import create_app
    from campaigns.contacts_import import import_contacts
    from campaigns.models import Contact
    from core import clock, migrate
    from core.db import db

    app = create_app({"DATABASE_URL": URL, "REDIS_URL": "", "SECRET_KEY": "bench"})
    first_data, second_data = csv_bytes(rows), csv_bytes(rows, "Renamed")
    with app.app_context():
        migrate.upgrade(URL)
        lists.add_name("tier", "gold")  # a partner's tier and region come from the brand's lists
        lists.add_name("region", "west")
        partner = accounts.create_partner(name="Bench", tier="gold", region="west")

        def timed(data: bytes, **kw) -> tuple[float, object]:
            start = time.perf_counter()
            report = import_contacts(partner.id, io.BytesIO(data), **kw)
            return time.perf_counter() - start, report

        first, report = timed(first_data)
        assert report.created == rows, report.to_json()
        dry, report = timed(second_data, dry_run=True)
        assert report.updated == rows and report.dry_run, report.to_json()
        again, report = timed(second_data)
        assert report.updated == rows, report.to_json()

        # Peak Python memory of a dry run (no writes) at a quarter of the rows and at all rows.
        peaks = []
        for size in (rows // 4, rows):
            data = csv_bytes(size, "Other")
            tracemalloc.start()
            import_contacts(partner.id, io.BytesIO(data), dry_run=True)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            del data

        # Baseline: the same rows, already normalized, COPY'd straight into the table.
        db.session.execute(delete(Contact))
        db.session.commit()
        now = clock.now()
        prepared = [(partner.id, f"user{i}@example.org", f"First{i}", "Last",
                     f'{{"city": "Town{i % 50}"}}', True, "", now, now) for i in range(rows)]
        start = time.perf_counter()
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(
                "COPY contacts (partner_id, email, first_name, last_name, attributes, consent, "
                "consent_source, created_at, updated_at) FROM STDIN") as copy:
            for row in prepared:
                copy.write_row(row)
        db.session.commit()
        baseline = time.perf_counter() - start
        db.session.remove()
        db.engine.dispose()
    print(f"contacts import, {rows:,} rows ({len(first_data) / 1e6:.1f} MB CSV), PostgreSQL:")
    print(f"  first import (all new):       {rows / first:8,.0f} rows/s  ({first:.2f} s)")
    print(f"  re-import (all rows change):  {rows / again:8,.0f} rows/s  ({again:.2f} s)")
    print(f"  dry run of that re-import:    {rows / dry:8,.0f} rows/s  ({dry:.2f} s)")
    print(f"  baseline raw COPY:            {rows / baseline:8,.0f} rows/s  ({baseline:.2f} s)")
    print(f"  import / baseline = {first / baseline:.2f}x the time (detection, parsing, "
          "validation, duplicates, report, merge)")
    print(f"  peak Python memory: {peaks[0] / 1e6:.1f} MB at {rows // 4:,} rows, "
          f"{peaks[1] / 1e6:.1f} MB at {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
