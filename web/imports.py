"""Background CSV imports: the upload is saved, a thread imports it, the page polls progress.

The import itself is `campaigns.contacts.import_contacts` (one transaction); this module only
feeds it the saved file through a counting reader and records progress on a separate
connection, so the progress is visible while the import's transaction is still open.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import IO

from flask import Flask, current_app
from sqlalchemy import update

from campaigns.contacts import import_contacts
from core import clock
from core.db import db
from core.errors import DomainError
from web.models import ImportJob

log = logging.getLogger("lastmile.web.imports")
_threads: list[threading.Thread] = []
PROGRESS_EVERY = 256 * 1024  # bytes between progress writes
# A 50 MB file imports in minutes; a job still unfinished after this long lost its thread
# (the web process restarted) and is reported as interrupted rather than polled forever.
STALE_AFTER = timedelta(minutes=30)


class _CountingRaw(io.RawIOBase):
    """A raw reader over a file that reports each pass's position (check pass, import pass)."""

    def __init__(self, handle: IO[bytes], report) -> None:
        self.handle = handle
        self.report = report
        self.passes = 0
        self.position = 0
        self.reported = -PROGRESS_EVERY

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.handle.readinto(buffer)
        self.position += n or 0
        if self.position - self.reported >= PROGRESS_EVERY or not n:
            self.reported = self.position
            self.report(self.passes, self.position)
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.handle.seek(offset, whence)
        if self.position == 0:
            self.passes += 1
        return self.position

    def tell(self) -> int:
        return self.position


def upload_dir(app: Flask) -> Path:
    """Return (and create) the folder where uploads wait for their import."""
    folder = Path(app.instance_path) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_import(partner_id: int, user_id: int, upload) -> ImportJob:
    """Save an uploaded file, record a queued job and import it in a background thread."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    path = upload_dir(app) / f"{secrets.token_hex(16)}.csv"
    upload.save(path)
    job = ImportJob(partner_id=partner_id, user_id=user_id,
                    filename=(upload.filename or "upload.csv")[:300], path=str(path),
                    status="queued", total_bytes=path.stat().st_size, processed_bytes=0,
                    error="")
    db.session.add(job)
    db.session.commit()
    thread = threading.Thread(target=_run, args=(app, job.id), name=f"import-{job.id}",
                              daemon=True)
    _threads[:] = [t for t in _threads if t.is_alive()]
    _threads.append(thread)
    thread.start()
    return job


def _set(job_id: int, **values) -> None:
    # Own connection: the import's transaction must not be committed by a progress write.
    with db.engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(**values))


def _run(app: Flask, job_id: int) -> None:

    with app.app_context():
        job = db.session.get(ImportJob, job_id)
        if job is None:
            return
        partner_id, path = job.partner_id, Path(job.path)
        db.session.rollback()

        def report(passes: int, position: int) -> None:
            status = "checking" if passes <= 1 else "importing"
            _set(job_id, status=status, processed_bytes=position)

        try:
            with path.open("rb") as handle:
                stream = io.BufferedReader(_CountingRaw(handle, report))
                stream.seek(0)
                result = import_contacts(partner_id, stream).to_json()
            _set(job_id, status="done", result=result, processed_bytes=path.stat().st_size,
                 finished_at=clock.now())
        except DomainError as err:
            db.session.rollback()
            _set(job_id, status="failed", error=err.message, finished_at=clock.now())
        except Exception:  # noqa: BLE001 - a background job must record, not vanish
            db.session.rollback()
            log.exception("contact import %s failed", job_id)
            _set(job_id, status="failed", error="The import failed; it has been logged.",
                 finished_at=clock.now())
        finally:
            path.unlink(missing_ok=True)
            db.session.remove()


def job_json(job: ImportJob) -> dict:
    """Serialize a job for the polling page."""
    total = max(job.total_bytes, 1)
    if job.status not in ("done", "failed") and clock.now() - job.created_at > STALE_AFTER:
        return {"id": job.id, "status": "failed", "total": total, "processed": total,
                "message": "The import was interrupted; please upload the file again.",
                "result": None, "error": "interrupted"}
    done = job.status in ("done", "failed")
    messages = {"queued": "Waiting to start…", "checking": "Checking the file…",
                "importing": "Importing contacts…", "done": "Import finished.",
                "failed": job.error or "Import failed."}
    return {"id": job.id, "status": job.status, "total": total,
            "processed": total if done else min(job.processed_bytes, total),
            "message": messages.get(job.status, job.status), "result": job.result,
            "error": job.error}


def wait_for_imports(timeout: float = 30.0) -> None:
    """Join the running import threads (tests and shutdown)."""
    while _threads:
        _threads.pop().join(timeout)
