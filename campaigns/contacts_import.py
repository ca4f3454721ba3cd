"""CSV contact imports: the upload is stored and checked, an RQ job imports it with progress.

1. `start_import` streams the upload into `import_chunks` (1 MiB rows) while checking its
   size and encoding, so a file over 50 MB or not UTF-8 is refused at once and stores nothing;
   then it records a queued `ImportJob` and hands its id to the `imports` queue (with Redis)
   or leaves it for the embedded worker (without).
2. `run_import_job` (the RQ job) claims the job, imports the rows in one transaction
   (`import_contacts`: chunks of IMPORT_CHUNK rows, memory flat) while a heartbeat and the
   byte progress are written on their own connection, then stores the report.
3. `recover_stale_imports` (every scheduler tick) finds jobs whose heartbeat stopped (their
   worker died): the import's transaction was rolled back with the worker, so the job is
   simply run again, once; after that it fails with a reason the partner reads. A job is
   never left "running".
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

from flask import Flask, current_app
from rq import Queue
from sqlalchemy import delete, insert, select, update
from sqlalchemy import text as sql

from campaigns.consent import import_origin, record_import_consent
from campaigns.contacts import (
    ATTRIBUTE_KEY,
    CONTROL,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    NAME_MAX,
    InvalidEmail,
    normalize_email,
)
from campaigns.models import Contact, ImportChunk, ImportJob
from core import clock
from core.db import db
from core.errors import DomainError, TooLarge, ValidationError
from core.i18n import _, lazy_gettext
from core.redis import configured_redis

log = logging.getLogger(__name__)

QUEUE_NAME = "imports"
JOB_TIMEOUT = 1800  # seconds: a 50 MB file imports in a few minutes
CHUNK_BYTES = 1024 * 1024  # one import_chunks row
PROGRESS_EVERY = 256 * 1024  # bytes between progress writes
HEARTBEAT_SECONDS = 10
STALE_AFTER = timedelta(seconds=90)  # no heartbeat this long: the worker is gone
MAX_ATTEMPTS = 2
MAX_IMPORT_BYTES = 50 * 1024 * 1024

IMPORT_CHUNK = 1000

MAX_REPORTED_REJECTS = 1000

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t", "x"})

FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f"})

KNOWN_COLUMNS = ("email", "first_name", "last_name", "consent")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, row: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED_REJECTS:
            self.rejected.append({"row": row, "reason": reason})

    def to_json(self) -> dict:
        return {"created": self.created, "updated": self.updated, "rejected": self.rejected,
                "rejected_count": self.rejected_count,
                "rejected_truncated": self.rejected_count > len(self.rejected)}


class _UploadCheck:
    """Checks an upload block by block: 413 over 50 MB, 422 unless it is UTF-8 text."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.size = 0
        self.line = 1

    def feed(self, block: bytes) -> None:
        self.size += len(block)
        if self.size > MAX_IMPORT_BYTES:
            raise TooLarge(_("The file is larger than %(mb)s MB; split it into smaller files.",
                             mb=MAX_IMPORT_BYTES // (1024 * 1024)))
        try:
            self.decoder.decode(block)
        except UnicodeDecodeError as exc:
            bad_line = self.line + block[: exc.start].count(b"\n")
            raise ValidationError(
                _("The file is not UTF-8 text (byte 0x%(byte)s on line %(line)s). Export it as "
                  "'CSV UTF-8' and upload it again; nothing was imported.",
                  byte=f"{block[exc.start]:02x}", line=bad_line),
                fields={"file": _("must be UTF-8 encoded")}, code="bad_encoding",
            ) from exc
        self.line += block.count(b"\n")

    def finish(self) -> None:
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ValidationError(
                _("The file is not UTF-8 text (it ends inside a character on line %(line)s). "
                  "Export it as 'CSV UTF-8' and upload it again; nothing was imported.",
                  line=self.line),
                fields={"file": _("must be UTF-8 encoded")}, code="bad_encoding",
            ) from exc
        if self.size == 0:
            raise ValidationError(_("The file is empty."), fields={"file": _("is empty")})


def check_import_file(stream: IO[bytes]) -> None:
    """Stream through an uploaded file once (size, encoding), then rewind it.

    Runs before anything is written, so a too-large or wrongly encoded file changes nothing.
    """
    check = _UploadCheck()
    while block := stream.read(64 * 1024):
        check.feed(block)
    check.finish()
    stream.seek(0)


def _header_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    aliases = {"e_mail": "email", "email_address": "email", "firstname": "first_name",
               "lastname": "last_name", "first": "first_name", "last": "last_name"}
    return aliases.get(key, key)


def _parse_header(header: list[str]) -> list[str]:
    keys = [_header_key(h) for h in header]
    problems: dict[str, str] = {}
    if "email" not in keys:
        problems["email"] = "the header row has no email column"
    seen: set[str] = set()
    for raw, key in zip(header, keys, strict=True):
        if not key:
            if raw.strip():
                problems[raw[:64]] = "column name has no letters or digits"
            continue
        if key in seen:
            problems[key] = "column appears twice"
        seen.add(key)
        if key not in KNOWN_COLUMNS and not ATTRIBUTE_KEY.match(key):
            problems[raw[:64]] = "column name must be letters, digits and _ (max 64)"
    if len([k for k in keys if k and k not in KNOWN_COLUMNS]) > MAX_ATTRIBUTES:
        problems["header"] = f"at most {MAX_ATTRIBUTES} attribute columns"
    if problems:
        raise ValidationError("The CSV header row is not usable; nothing was imported.",
                              fields=problems, code="bad_header")
    return keys


def _rows(text: IO[str], report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) per record; an unparseable record becomes a reject."""
    reader = csv.reader(text)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.reject(reader.line_num, f"unreadable CSV: {exc}")
            continue
        yield reader.line_num, fields


def _parse_row(keys: list[str], fields: list[str]) -> tuple[dict | None, str | None]:
    """Return (row dict, None) or (None, reason)."""
    if len(fields) > len(keys):
        return None, f"has {len(fields)} fields but the header has {len(keys)}"
    row: dict = {"attributes": {}}
    for key, value in zip(keys, fields, strict=False):
        if not key:
            continue
        if "\x00" in value:
            return None, f"{key} contains a NUL character"
        value = value.strip()
        if key == "email":
            try:
                row["email"] = normalize_email(value)
            except InvalidEmail as exc:
                return None, f"invalid email: {exc}" if value else "email is missing"
        elif key == "consent":
            word = value.lower()
            if word in TRUE_WORDS:
                row["consent"] = True
            elif word in FALSE_WORDS:
                row["consent"] = False
            elif word:
                return None, f"consent must be yes or no, not {value[:40]!r}"
        elif key in ("first_name", "last_name"):
            if len(value) > NAME_MAX:
                return None, f"{key} is longer than {NAME_MAX} characters"
            if CONTROL.search(value) or "\n" in value or "\r" in value:
                return None, f"{key} must be a single line of text"
            if value:
                row[key] = value
        elif value:
            if len(value) > MAX_ATTRIBUTE_VALUE:
                return None, f"{key} is longer than {MAX_ATTRIBUTE_VALUE} characters"
            row["attributes"][key] = value
    if "email" not in row:
        return None, "email is missing"
    return row, None


def _merge(into: dict, row: dict) -> None:
    """Merge a later row for the same address: non-empty values win, attributes combine."""
    for key in ("first_name", "last_name", "consent"):
        if key in row:
            into[key] = row[key]
    into["attributes"] = {**into.get("attributes", {}), **row["attributes"]}


def _flush_chunk(partner_id: int, chunk: dict[str, dict], report: ImportReport) -> None:
    """Write one chunk: update existing contacts, insert the new ones (executemany each)."""
    if not chunk:
        return
    existing = {
        c.email: c
        for c in db.session.execute(
            select(Contact.id, Contact.email, Contact.first_name, Contact.last_name,
                   Contact.attributes, Contact.consent)
            .where(Contact.partner_id == partner_id, Contact.email.in_(list(chunk)))
        )
    }
    now = clock.now()
    inserts: list[dict] = []
    updates: list[dict] = []
    for email, row in chunk.items():
        old = existing.get(email)
        if old is None:
            inserts.append({
                "partner_id": partner_id, "email": email,
                "first_name": row.get("first_name", ""), "last_name": row.get("last_name", ""),
                "attributes": row["attributes"], "consent": row.get("consent", False),
                "created_at": now, "updated_at": now,
            })
            report.created += 1
            report.updated += row["_rows"] - 1
        else:
            updates.append({
                "id": old.id,
                "first_name": row.get("first_name", old.first_name),
                "last_name": row.get("last_name", old.last_name),
                "attributes": {**(old.attributes or {}), **row["attributes"]},
                "consent": row.get("consent", old.consent),
                "updated_at": now,
            })
            report.updated += row["_rows"]
    if inserts:
        db.session.execute(insert(Contact), inserts)
    if updates:
        db.session.execute(update(Contact), updates)
    record_import_consent(partner_id, inserts, updates, existing)


def import_contacts(partner_id: int, stream: IO[bytes], *, checked: bool = False
                    ) -> ImportReport:
    """Import a CSV upload for a partner: create new addresses, merge known ones, report rejects.

    The file is checked whole first (size, encoding), then parsed row by row and written in
    chunks of IMPORT_CHUNK rows inside one transaction, so memory stays flat and a failure
    anywhere leaves nothing half-imported.
    """
    if not checked:  # start_import checked it as it was stored
        check_import_file(stream)
    report = ImportReport()
    # newline="" lets the csv module see raw line endings inside quoted fields.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
    try:
        return _import_rows(partner_id, text, report)
    finally:
        text.detach()


def _import_rows(partner_id: int, text: IO[str], report: ImportReport) -> ImportReport:
    rows = _rows(text, report)
    header: list[str] | None = None
    for _line, fields in rows:
        if any(f.strip() for f in fields):
            header = fields
            break
    if header is None:
        raise ValidationError("The file has no header row.", fields={"file": "has no header row"})
    keys = _parse_header(header)
    chunk: dict[str, dict] = {}
    # Within this one long transaction PostgreSQL's statistics still describe the table as it
    # was before the import, so a cached generic plan for the chunk lookup degrades to a scan
    # (100k rows took 112 s). Planning each chunk's lookup afresh keeps it an index scan.
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sql("SET LOCAL plan_cache_mode = force_custom_plan"))
    try:
        for line, fields in rows:
            if not fields or not any(f.strip() for f in fields):
                continue
            row, reason = _parse_row(keys, fields)
            if row is None:
                report.reject(line, reason or "invalid row")
                continue
            email = row.pop("email")
            if email in chunk:
                _merge(chunk[email], row)
                chunk[email]["_rows"] += 1
            else:
                row["_rows"] = 1
                chunk[email] = row
            if len(chunk) >= IMPORT_CHUNK:
                _flush_chunk(partner_id, chunk, report)
                chunk = {}
        _flush_chunk(partner_id, chunk, report)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return report


# ------------------------------------------------------------------------- the import as a job


def import_queue(connection) -> Queue:  # noqa: ANN001 - redis.Redis
    """Return the queue import jobs travel on."""
    return Queue(QUEUE_NAME, connection=connection)


def start_import(partner_id: int, user_id: int, filename: str, stream: IO[bytes]) -> ImportJob:
    """Store an upload (checked as it streams in) and queue its import; return the job.

    A file over 50 MB, not UTF-8 or empty is refused here (413/422) and stores nothing.
    """
    job = ImportJob(partner_id=partner_id, user_id=user_id, filename=(filename or "")[:300],
                    status="queued", total_bytes=0, processed_bytes=0, attempts=0, error="")
    db.session.add(job)
    db.session.flush()
    check = _UploadCheck()
    buffer = bytearray()
    seq = 0
    try:
        while block := stream.read(64 * 1024):
            check.feed(block)
            buffer += block
            if len(buffer) >= CHUNK_BYTES:
                if seq == 0:
                    _check_header(bytes(buffer))
                db.session.execute(insert(ImportChunk),
                                   [{"job_id": job.id, "seq": seq, "data": bytes(buffer)}])
                seq += 1
                buffer.clear()
        check.finish()
        if seq == 0:
            _check_header(bytes(buffer))
        if buffer:
            db.session.execute(insert(ImportChunk),
                               [{"job_id": job.id, "seq": seq, "data": bytes(buffer)}])
        job.total_bytes = check.size
        job.heartbeat_at = clock.now()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    enqueue_import(job.id)
    log.info("contact import %s queued: %s bytes from partner %s", job.id, job.total_bytes,
             partner_id)
    return job


def _check_header(first: bytes) -> None:
    """Refuse at upload a file whose header row (found in its first chunk) is not usable."""
    text = first.decode("utf-8-sig", errors="ignore")
    complete = len(first) < CHUNK_BYTES
    for fields in csv.reader(io.StringIO(text, newline="")):
        if any(f.strip() for f in fields):
            _parse_header(fields)
            return
    if complete:
        raise ValidationError(_("The file has no header row."),
                              fields={"file": _("has no header row")})


def enqueue_import(job_id: int) -> bool:
    """Hand a queued job to the RQ `imports` queue; without Redis the embedded worker polls.

    Tell whether it went to Redis. If Redis is down the job stays queued in the database and
    `recover_stale_imports` hands it over again later.
    """
    client = configured_redis(current_app.config)
    if client is None:
        return False
    try:
        import_queue(client).enqueue(run_import_job, job_id, job_timeout=JOB_TIMEOUT,
                                     result_ttl=0, failure_ttl=7 * 86400,
                                     description=f"run_import_job({job_id})")
    except Exception:  # noqa: BLE001 - the row is the truth; recovery re-enqueues it
        log.exception("contact import %s: could not enqueue; it will be retried", job_id)
        return False
    return True


def _set(job_id: int, **values: object) -> None:
    # Own connection: the import's transaction must not be committed by a progress write.
    with db.engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))


def _claim(job_id: int) -> ImportJob | None:
    """Move a queued job to `checking` for this worker; None if another worker has it."""
    now = clock.now()
    claimed = db.session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.status == "queued")
        .values(status="checking", attempts=ImportJob.attempts + 1, heartbeat_at=now,
                processed_bytes=0)
        .returning(ImportJob.id)
    ).scalar()
    db.session.commit()
    return db.session.get(ImportJob, job_id) if claimed else None


class _ChunkReader(io.RawIOBase):
    """Reads a stored upload back chunk by chunk (one row in memory), reporting progress."""

    def __init__(self, job_id: int, report: Callable[[int], None]) -> None:
        self.job_id = job_id
        self.report = report
        self.seq = 0
        self.pending = b""
        self.position = 0
        self.reported = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        if not self.pending:
            # Its own connection: the import's transaction stays the only one writing.
            with db.engine.connect() as conn:
                data = conn.execute(select(ImportChunk.data).where(
                    ImportChunk.job_id == self.job_id, ImportChunk.seq == self.seq)).scalar()
            if data is None:
                return 0
            self.pending = bytes(data)
            self.seq += 1
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.position += n
        if self.position - self.reported >= PROGRESS_EVERY:
            self.reported = self.position
            self.report(self.position)
        return n


class _Heartbeat(threading.Thread):
    """Touches the job's heartbeat every few seconds while its import runs."""

    def __init__(self, app: Flask, job_id: int) -> None:
        super().__init__(name=f"import-heartbeat-{job_id}", daemon=True)
        self.app = app
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.app.app_context():
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                try:
                    _set(self.job_id, heartbeat_at=clock.now())
                except Exception:  # noqa: BLE001 - a missed beat only risks a late restart
                    log.warning("import %s: heartbeat failed", self.job_id, exc_info=True)


def run_import_job(job_id: int) -> str:
    """Import a stored upload (the RQ job); return the job's final status.

    A job another worker already claimed, or one that no longer exists, is left alone.
    """
    job = _claim(job_id)
    if job is None:
        return "skipped"
    partner_id = job.partner_id
    heartbeat = _Heartbeat(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    heartbeat.start()

    def progress(position: int) -> None:
        _set(job_id, status="importing", processed_bytes=position, heartbeat_at=clock.now())

    try:
        stream = io.BufferedReader(_ChunkReader(job_id, progress))
        with import_origin(job.user_id, job.filename):
            result = import_contacts(partner_id, stream, checked=True).to_json()
        _finish(job_id, status="done", result=result)
        log.info("contact import %s done: %s", job_id,
                 {k: result[k] for k in ("created", "updated", "rejected_count")})
        return "done"
    except DomainError as err:
        db.session.rollback()
        _finish(job_id, status="failed", error=err.message)
        return "failed"
    except Exception:
        db.session.rollback()
        log.exception("contact import %s failed", job_id)
        _finish(job_id, status="failed", error=_("The import failed; it has been logged."))
        return "failed"
    finally:
        heartbeat.stopped.set()
        heartbeat.join()


def _finish(job_id: int, **values: object) -> None:
    now = clock.now()
    with db.engine.begin() as conn:
        total = conn.execute(select(ImportJob.total_bytes).where(ImportJob.id == job_id)).scalar()
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            processed_bytes=total or 0, finished_at=now, heartbeat_at=now, **values))
        conn.execute(delete(ImportChunk).where(ImportChunk.job_id == job_id))


def recover_stale_imports() -> dict[str, int]:
    """Restart (once) or fail the jobs whose worker stopped; re-enqueue lost queued jobs.

    A job is stale when its heartbeat is older than STALE_AFTER: running ones lost their
    worker (the import's transaction died with it, so nothing was half-written), queued ones
    lost their queue entry (Redis flushed or down when it was enqueued).
    """
    limit = clock.now() - STALE_AFTER
    stale = db.session.execute(
        select(ImportJob.id, ImportJob.status, ImportJob.attempts).where(
            ImportJob.status.in_(("queued", "checking", "importing")),
            ImportJob.heartbeat_at < limit)
    ).all()
    counts = {"restarted": 0, "failed": 0, "requeued": 0}
    for job_id, status, attempts in stale:
        if status == "queued":
            values: dict = {"heartbeat_at": clock.now()}
            counts["requeued"] += 1
        elif attempts < MAX_ATTEMPTS:
            values = {"status": "queued", "heartbeat_at": clock.now(), "processed_bytes": 0}
            counts["restarted"] += 1
            log.warning("contact import %s: its worker stopped; starting it again", job_id)
        else:
            values = {"status": "failed", "finished_at": clock.now(),
                      "error": _("The import was interrupted twice because the worker running "
                                 "it stopped. Please upload the file again.")}
            counts["failed"] += 1
            log.error("contact import %s: interrupted %s times; failed", job_id, attempts)
        moved = db.session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == status,
                                    ImportJob.heartbeat_at < limit).values(**values)
        ).rowcount
        db.session.commit()
        if moved and values.get("status", status) == "queued":
            enqueue_import(job_id)
        if values.get("status") == "failed" and moved:
            db.session.execute(delete(ImportChunk).where(ImportChunk.job_id == job_id))
            db.session.commit()
    return {k: v for k, v in counts.items() if v}


def next_queued_import() -> int | None:
    """Return the oldest queued job's id (the embedded worker runs imports without Redis)."""
    return db.session.scalar(select(ImportJob.id).where(ImportJob.status == "queued")
                             .order_by(ImportJob.id).limit(1))


STATUS_WORDS = {
    "queued": lazy_gettext("Waiting to start…"),
    "checking": lazy_gettext("Checking the file…"),
    "importing": lazy_gettext("Importing contacts…"),
    "done": lazy_gettext("Import finished."),
    "failed": lazy_gettext("Import failed."),
}


def import_json(job: ImportJob) -> dict:
    """Serialize a job for the API and the polling page: status, progress and the report."""
    total = max(job.total_bytes, 1)
    finished = job.status in ("done", "failed")
    message = job.error if job.status == "failed" and job.error else STATUS_WORDS[job.status]
    return {
        "id": job.id,
        "status": job.status,
        "filename": job.filename,
        "total": total,
        "processed": total if finished else min(job.processed_bytes, total),
        "progress": 1.0 if finished else round(min(job.processed_bytes, total) / total, 3),
        "message": str(message),
        "attempts": job.attempts,
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
