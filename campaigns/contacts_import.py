"""CSV contact imports that say what they will do: upload → detect → map → dry run → import.

1. **Upload.** `upload_import` (the web wizard) and `start_import` (the API) stream the file
   into `import_chunks` (1 MiB rows) while campaigns/csv_files.py checks its size and detects
   its encoding:
   UTF-8 with or without a byte order mark, UTF-16 LE/BE (Excel's "Unicode text"), and
   Windows-1252 for anything that is not valid UTF-8. The delimiter (comma, semicolon, tab)
   is detected on the first rows by parsing them with each candidate (quoted fields
   included); the header row and the first rows are kept for the mapping step. Too large,
   empty, a spreadsheet file instead of CSV, or no header row: refused at once, nothing kept.
2. **Mapping.** Each column maps to `email`, `first_name`, `last_name`, `consent`,
   `attributes.<key>` or nothing (ignored); `auto_targets` proposes it from the header names.
   **Consent is never guessed**: it comes from a mapped consent column, or from the
   importer's attestation with a source text ("signed paper form at branch, 2026") recorded
   on each contact (`contacts.consent_source`); otherwise new contacts have no consent and
   the report's first line says so.
3. **Dry run or import.** `run_import_job` (the RQ job) streams the file through the CSV
   parser into a temporary staging table (PostgreSQL `COPY`; SQLite executemany), keeps the
   first row of each address (later repeats are duplicates: reported, not used), computes
   the report with SELECTs (new, updated with the fields that change, unchanged, duplicates,
   rejected rows, consent) and, unless it is a dry run, merges with ONE
   `INSERT … SELECT … ON CONFLICT (partner_id, email) DO UPDATE`. One transaction: the
   import completes or writes nothing; a dry run is rolled back. A heartbeat and the byte
   progress are written on their own connection.
4. `recover_stale_imports` (every scheduler tick) restarts once, or fails with a reason, a
   job whose worker died, and deletes uploads left waiting for more than a day.

Merge rules for a known address: a non-empty cell replaces the stored value, an empty one
keeps it; attributes are merged key by key; consent changes only through a consent column
(an empty answer keeps it) or an attestation.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from json.encoder import encode_basestring as encode_string
from typing import IO

from flask import Flask, current_app
from rq import Queue
from sqlalchemy import DateTime, bindparam, delete, insert, select, update
from sqlalchemy import text as sql

from accounts.models import User
from campaigns.contacts import (
    ATTRIBUTE_KEY,
    CONTROL,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    NAME_MAX,
    InvalidEmail,
    normalize_email,
)
from campaigns.csv_files import (
    DELIMITER_WORDS,
    DELIMITERS,
    ENCODINGS,
    UploadCheck,
    check_import_file,
    codec_for,
    read_sample,
    records,
    without_bom,
)
from campaigns.models import ImportChunk, ImportJob
from core import clock
from core.db import db
from core.errors import DomainError, StateError, ValidationError
from core.i18n import _, lazy_gettext, ngettext
from core.redis import configured_redis

log = logging.getLogger(__name__)

QUEUE_NAME = "imports"
JOB_TIMEOUT = 1800  # seconds: a 50 MB file imports in well under a minute
CHUNK_BYTES = 1024 * 1024  # one import_chunks row
PROGRESS_EVERY = 256 * 1024  # bytes between progress writes
HEARTBEAT_SECONDS = 10
STALE_AFTER = timedelta(seconds=90)  # no heartbeat this long: the worker is gone
UPLOAD_KEPT = timedelta(hours=24)  # an upload waiting for its mapping or confirmation
MAX_ATTEMPTS = 2

STAGE_BATCH = 1000  # rows per executemany on SQLite
MAX_OPTION_CHARS = 20_000  # the mapping JSON
MAX_SOURCE = 500  # the consent attestation

MAX_REPORTED_REJECTS = 1000
MAX_REPORTED_DUPLICATES = 1000
MAX_REPORTED_CHANGES = 100

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t", "x", "ja", "oui", "si", "sí"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f", "nein", "non", "nee", "nej"})

FIELDS = ("email", "first_name", "last_name", "consent")
ATTRIBUTE_PREFIX = "attributes."
# ------------------------------------------------------------------------------ the report


@dataclass
class ImportReport:
    """What an import did (or, for a dry run, would do); stored as the job's `result`."""

    dry_run: bool = False
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changes: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    duplicate_count: int = 0
    rejected: list[dict] = field(default_factory=list)
    rejected_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    consent: dict = field(default_factory=dict)
    encoding: str = ""
    delimiter: str = ","

    def reject(self, row: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED_REJECTS:
            self.rejected.append({"row": row, "reason": reason})

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "changes": self.changes,
            "changes_truncated": self.updated > len(self.changes),
            "duplicates": self.duplicates, "duplicate_count": self.duplicate_count,
            "duplicates_truncated": self.duplicate_count > len(self.duplicates),
            "rejected": self.rejected, "rejected_count": self.rejected_count,
            "rejected_truncated": self.rejected_count > len(self.rejected),
            "ignored_columns": self.ignored_columns, "consent": self.consent,
            "encoding": self.encoding, "delimiter": self.delimiter,
        }


def _n(number: int) -> str:
    return f"{number:,}"


def count_words(new: int, changed: int, same: int, dry: bool) -> str:
    """"2 new contacts added; 1 contact you already had changed; 0 already matched the file."."""
    if dry:
        parts = [ngettext("%(n)s new contact would be added", "%(n)s new contacts would be added",
                          new, n=_n(new)),
                 ngettext("%(n)s contact you already have would change",
                          "%(n)s contacts you already have would change", changed,
                          n=_n(changed)),
                 ngettext("%(n)s already matches the file", "%(n)s already match the file",
                          same, n=_n(same))]
    else:
        parts = [ngettext("%(n)s new contact added", "%(n)s new contacts added", new,
                          n=_n(new)),
                 ngettext("%(n)s contact you already had changed",
                          "%(n)s contacts you already had changed", changed, n=_n(changed)),
                 ngettext("%(n)s already matched the file", "%(n)s already matched the file",
                          same, n=_n(same))]
    return "; ".join(parts) + "."


def report_lines(result: dict) -> list[str]:
    """The report in sentences, most important first: consent, then what changes."""
    dry = result.get("dry_run", False)
    consent = result.get("consent") or {}
    mode = consent.get("mode", "none")
    lines: list[str] = []
    if mode == "none":
        n = consent.get("new_without_consent", 0)
        if dry:
            lines.append(ngettext(
                "No consent column and no attestation: this %(n)s new contact would be "
                "imported as “no consent to email” and could not be mailed until consent is "
                "recorded.",
                "No consent column and no attestation: these %(n)s new contacts would be "
                "imported as “no consent to email” and could not be mailed until consent is "
                "recorded.", n, n=_n(n)))
        else:
            lines.append(ngettext(
                "No consent column and no attestation: this %(n)s contact was imported as "
                "“no consent to email” and cannot be mailed until consent is recorded.",
                "No consent column and no attestation: these %(n)s contacts were imported as "
                "“no consent to email” and cannot be mailed until consent is recorded.",
                n, n=_n(n)))
        if result.get("updated", 0) + result.get("unchanged", 0):
            lines.append(_("Contacts you already had keep their consent as it was."))
    elif mode == "column":
        lines.append(_("Consent comes from the column “%(column)s”: %(yes)s with consent, "
                       "%(no)s without (answer “no” or empty: they cannot be mailed).",
                       column=consent.get("column", ""),
                       yes=_n(consent.get("with_consent", 0)),
                       no=_n(consent.get("without_consent", 0))))
    else:
        recorded = consent.get("recorded", 0)
        source = consent.get("source", "")
        lines.append(ngettext(
            "Consent attested by you: “%(source)s” would be recorded on %(n)s contact.",
            "Consent attested by you: “%(source)s” would be recorded on %(n)s contacts.",
            recorded, source=source, n=_n(recorded)) if dry else ngettext(
            "Consent attested by you: “%(source)s” is recorded on %(n)s contact.",
            "Consent attested by you: “%(source)s” is recorded on %(n)s contacts.",
            recorded, source=source, n=_n(recorded)))
        kept = consent.get("kept", 0)
        if kept:
            lines.append(ngettext(
                "%(n)s contact already had a consent record; it is kept.",
                "%(n)s contacts already had a consent record; it is kept.", kept, n=_n(kept)))
    lines.append(count_words(result.get("created", 0), result.get("updated", 0),
                             result.get("unchanged", 0), dry))
    dups = result.get("duplicate_count", 0)
    if dups:
        lines.append(ngettext(
            "%(n)s row repeats an email address found earlier in the file: the first row "
            "with each address is used, the repeat is ignored.",
            "%(n)s rows repeat an email address found earlier in the file: the first row "
            "with each address is used, the repeats are ignored.", dups, n=_n(dups)))
    rejected = result.get("rejected_count", 0)
    if rejected:
        lines.append(ngettext("%(n)s row could not be used (see why below).",
                              "%(n)s rows could not be used (see why below).", rejected,
                              n=_n(rejected)))
    ignored = result.get("ignored_columns") or []
    if ignored:
        lines.append(_("Not imported (set to “Do not import”): %(columns)s.",
                       columns=", ".join(f"“{c}”" for c in ignored)))
    return lines


# ------------------------------------------------------------------------------- the mapping


def _header_key(name: str) -> str:
    key = re.sub(r"[^a-z0-9_]+", "_", name.strip().lower()).strip("_")
    aliases = {"e_mail": "email", "email_address": "email", "e_mail_address": "email",
               "emailaddress": "email",
               "firstname": "first_name", "first": "first_name", "given_name": "first_name",
               "forename": "first_name",
               "lastname": "last_name", "last": "last_name", "surname": "last_name",
               "family_name": "last_name"}
    return aliases.get(key, key)


def attribute_name(column: str) -> str:
    """The extra-field name a column would get ("Favourite Color" → favourite_color), or ""."""
    key = _header_key(column)
    return key if ATTRIBUTE_KEY.match(key) else ""


def auto_targets(columns: list[str]) -> list[str | None]:
    """Propose a field for each column from its name: the aliases, else an attribute.

    Each field goes to the first column that names it; a column whose name cannot be an
    attribute key (or repeats one) is proposed as ignored, and the report lists it.
    """
    targets: list[str | None] = []
    used: set[str] = set()
    for name in columns:
        key = _header_key(name)
        target: str | None
        if key in FIELDS:
            target = key
        elif key and ATTRIBUTE_KEY.match(key):
            target = ATTRIBUTE_PREFIX + key
        else:
            target = None
        if target in used:
            target = None
        if target is not None:
            used.add(target)
        targets.append(target)
    return targets


def _target_problem(target: object) -> str | None:
    if target is None or target in FIELDS:
        return None
    if isinstance(target, str) and target.startswith(ATTRIBUTE_PREFIX):
        if ATTRIBUTE_KEY.match(target[len(ATTRIBUTE_PREFIX):]):
            return None
        return _("an extra field's name must be letters, digits and _, starting with a letter "
                 "(at most 64)")
    return _("unknown field: use email, first_name, last_name, consent, attributes.<name> "
             "or null to ignore the column")


def check_targets(columns: list[str], targets: list[str | None]) -> dict[object, str]:
    """Problems of a mapping, keyed by column index (int) or by field name."""
    problems: dict[object, str] = {}
    seen: dict[str, int] = {}
    for index, target in enumerate(targets):
        problem = _target_problem(target)
        if problem:
            problems[index] = problem
        elif target is not None:
            if target in seen:
                problems[index] = _("“%(column)s” is already imported as this field",
                                    column=columns[seen[target]])
            else:
                seen[target] = index
    if "email" not in seen:
        problems["email"] = _("the header row has no email column")
    if sum(1 for t in targets if t and t.startswith(ATTRIBUTE_PREFIX)) > MAX_ATTRIBUTES:
        problems["mapping"] = _("at most %(n)s columns can become extra fields", n=MAX_ATTRIBUTES)
    return problems


@dataclass
class Consent:
    """How the import sets consent: `column` (the mapped one), `attested` (with a source) or
    `none` (new contacts have none; existing ones keep theirs)."""

    mode: str
    source: str = ""


def clean_source(raw: str) -> tuple[str, str | None]:
    """Return (source, problem) for an attestation's source text."""
    source = (raw or "").strip()
    if not source:
        return "", _("say where the consent comes from, e.g. “signed paper form at branch, "
                     "2026”")
    if len(source) > MAX_SOURCE:
        return source, _("at most %(n)s characters", n=MAX_SOURCE)
    if CONTROL.search(source) or "\n" in source or "\r" in source:
        return source, _("must be a single line of text")
    return source, None


def check_consent(targets: list[str | None], consent: Consent) -> dict[str, str]:
    problems: dict[str, str] = {}
    has_column = "consent" in targets
    if consent.mode == "column" and not has_column:
        problems["consent"] = _("choose the column that holds the consent answer")
    elif consent.mode in ("attested", "none") and has_column:
        problems["consent"] = _("the file has a consent column: use it, or set that column to "
                                "“Do not import” to attest consent or import without it")
    if consent.mode == "attested":
        _source, problem = clean_source(consent.source)
        if problem:
            problems["consent_source"] = problem
    if consent.mode not in ("column", "attested", "none"):
        problems["consent"] = _("choose how consent is recorded")
    return problems


# --------------------------------------------------------------------------- email addresses

# An ASCII dot-atom local part, "@", a plain ASCII host name: the common address.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_SIMPLE_EMAIL = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@({_HOST})")
# What a name may not contain: control characters and line breaks (a tab is allowed).
_NOT_A_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _Emails:
    """`normalize_email`, fast for the common case: one full validation per domain.

    An ASCII dot-atom local part is checked by a regular expression; the domain is validated
    (and cached) by `normalize_email` itself, and only a domain that normalizes to its own
    lower-case ASCII form takes the fast path. Anything else (spaces around it, quoted or
    non-ASCII local parts, internationalized domains, over-long addresses) goes through
    `normalize_email`, so the result and the error message are those of a contact typed in
    by hand (tests/test_contacts_import.py checks both paths agree).
    """

    def __init__(self) -> None:
        self.domains: dict[str, bool] = {}
        self.match = _SIMPLE_EMAIL.fullmatch

    def normalize(self, raw: str) -> str:
        found = self.match(raw)
        if found is None or len(raw) > 254 or found.end(1) > 64:
            return normalize_email(raw)
        domain = found[2].lower()
        simple = self.domains.get(domain)
        if simple is None:
            if len(self.domains) > 50_000:
                self.domains.clear()
            try:
                simple = normalize_email("a@" + domain) == "a@" + domain
            except InvalidEmail:
                simple = False
            self.domains[domain] = simple
        return raw.lower() if simple else normalize_email(raw)


# -------------------------------------------------------------------------- parsing the rows


@dataclass
class ImportPlan:
    """Everything the importer needs to know about a file besides its bytes."""

    encoding: str
    delimiter: str
    columns: list[str] | None = None  # None: take the header row as it comes (auto mapping)
    targets: list[str | None] | None = None
    consent: Consent | None = None  # None: the consent column if mapped, else none
    consent_record: str = ""  # written to contacts.consent_source when consent is given
    user_id: int | None = None  # who imports (for the consent history)
    filename: str = ""


def _find_header(reader: Iterator[list[str]]) -> tuple[int, list[str] | None]:
    """Read up to the header row (the first non-empty one); return (its row number, it)."""
    for row, fields, _error in records(reader):
        if fields is not None and "".join(fields).strip():
            return row, [f.strip() for f in fields]
    return 0, None


def _rows(reader: Iterator[list[str]], row: int, header: list[str],
          targets: list[str | None], report: ImportReport) -> Iterator[tuple]:
    """Yield a staging tuple per usable row after `row`; report the others as rejected.

    (row, email, first_name, last_name, consent, attributes JSON); None means "empty cell".
    A column without a name is ignored; if it holds values, the report lists it. This is
    the import's hot loop: it stays inline and allocation-light.
    """
    width = len(targets)
    absent = width + 1  # a position no row reaches: the field is not mapped
    unnamed = [i for i, name in enumerate(header) if not name and targets[i] is None]
    unnamed_used: list[int] = []
    email_at = targets.index("email")
    first_at = targets.index("first_name") if "first_name" in targets else absent
    last_at = targets.index("last_name") if "last_name" in targets else absent
    consent_at = targets.index("consent") if "consent" in targets else absent
    # (column, key, the key as a JSON member prefix): a row's attributes are written as
    # JSON text directly, each value escaped by the json module's C string encoder.
    attributes = [(i, t[len(ATTRIBUTE_PREFIX):], encode_string(t[len(ATTRIBUTE_PREFIX):]) + ":")
                  for i, t in enumerate(targets) if t and t.startswith(ATTRIBUTE_PREFIX)]
    normalize = _Emails().normalize
    bad_name = _NOT_A_LINE.search
    true_words, false_words = TRUE_WORDS, FALSE_WORDS

    def name_problem(field: str, value: str) -> str:
        if len(value) > NAME_MAX:
            return _("%(field)s is longer than %(n)s characters", field=field, n=NAME_MAX)
        if "\x00" in value:
            return _("contains a NUL character")
        return _("%(field)s must be a single line of text", field=field)

    while True:
        try:
            for fields in reader:
                row += 1
                count = len(fields)
                if count > width and "".join(fields[width:]).strip():
                    if not "".join(fields).strip():
                        continue
                    report.reject(row, _("has %(n)s fields but the header has %(m)s", n=count,
                                         m=width))
                    continue
                raw = fields[email_at] if email_at < count else ""
                try:
                    email = normalize(raw)
                except InvalidEmail as exc:
                    if raw.strip():
                        report.reject(row, _("invalid email: %(why)s", why=str(exc)))
                    elif "".join(fields).strip():
                        report.reject(row, _("email is missing"))
                    continue  # else an empty row
                first = last = consent = attrs = None
                if first_at < count:
                    first = fields[first_at].strip() or None
                    if first is not None and (len(first) > NAME_MAX or bad_name(first)):
                        report.reject(row, name_problem("first_name", first))
                        continue
                if last_at < count:
                    last = fields[last_at].strip() or None
                    if last is not None and (len(last) > NAME_MAX or bad_name(last)):
                        report.reject(row, name_problem("last_name", last))
                        continue
                if consent_at < count:
                    word = fields[consent_at].strip().lower()
                    if word in true_words:
                        consent = True
                    elif word in false_words:
                        consent = False
                    elif word:
                        report.reject(row, _("consent must be yes or no, not %(value)s",
                                             value=repr(fields[consent_at].strip()[:40])))
                        continue
                if attributes:
                    members = []
                    problem = None
                    for at, key, member in attributes:
                        if at < count:
                            value = fields[at].strip()
                            if value:
                                if len(value) > MAX_ATTRIBUTE_VALUE:
                                    problem = _("%(field)s is longer than %(n)s characters",
                                                field=key, n=MAX_ATTRIBUTE_VALUE)
                                elif "\x00" in value:
                                    problem = _("contains a NUL character")
                                members.append(member + encode_string(value))
                    if problem:
                        report.reject(row, problem)
                        continue
                    if members:
                        attrs = "{" + ",".join(members) + "}"
                if unnamed:
                    for at in [i for i in unnamed if i < count and fields[i].strip()]:
                        unnamed.remove(at)
                        unnamed_used.append(at)
                yield (row, email, first, last, consent, attrs)
            break
        except csv.Error as exc:
            row += 1
            report.reject(row, _("unreadable CSV: %(error)s", error=str(exc)))
    report.ignored_columns += [_("column %(n)s (it has no name)", n=at + 1)
                               for at in sorted(unnamed_used)]


# ------------------------------------------------------------------- staging, report, merge


def _stage_postgres(rows: Iterator[tuple]) -> int:
    """COPY the parsed rows into a temporary table (dropped at the transaction's end)."""
    raw = db.session.connection().connection.driver_connection
    count = 0
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE import_rows (line integer NOT NULL, email text NOT "
                       "NULL, first_name text, last_name text, consent boolean, attrs jsonb) "
                       "ON COMMIT DROP")
        with cursor.copy("COPY import_rows (line, email, first_name, last_name, consent, "
                         "attrs) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def _stage_sqlite(rows: Iterator[tuple]) -> int:
    """The embedded default: executemany into a temporary table, a chunk at a time."""
    raw = db.session.connection().connection.driver_connection
    raw.execute("DROP TABLE IF EXISTS temp.import_rows")
    raw.execute("DROP TABLE IF EXISTS temp.import_merge")
    raw.execute("CREATE TEMP TABLE import_rows (line INTEGER NOT NULL, email TEXT NOT NULL, "
                "first_name TEXT, last_name TEXT, consent BOOLEAN, attrs TEXT)")
    count = 0
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= STAGE_BATCH:
            raw.executemany("INSERT INTO import_rows VALUES (?, ?, ?, ?, ?, ?)", batch)
            count += len(batch)
            batch = []
    if batch:
        raw.executemany("INSERT INTO import_rows VALUES (?, ?, ?, ?, ?, ?)", batch)
        count += len(batch)
    return count


def _merge_sql(postgres: bool, mode: str) -> dict[str, str]:
    """The SQL of the report and the merge, for a dialect and a consent mode.

    Only the constant fragments chosen here are interpolated; every value is a bound parameter.
    """
    consent = {"column": "coalesce(f.consent, c.consent, false)", "attested": "true",
               "none": "coalesce(c.consent, false)"}[mode]
    record_here = {"column": "coalesce(f.consent, false)", "attested": "true",
                   "none": "false"}[mode]
    if postgres:
        # contacts.attributes is JSONB here (the staged attrs too): merged without casts.
        attrs_new = "coalesce(c.attributes, '{}'::jsonb) || coalesce(f.attrs, '{}'::jsonb)"
        attrs_changed = "coalesce(NOT c.attributes @> f.attrs, false)"
        attrs_value = "new_attrs"
        attrs_conflict = "contacts.attributes || excluded.attributes"
        create = "CREATE TEMP TABLE import_merge ON COMMIT DROP AS"
        collate = ' COLLATE "C"'  # byte order: equal is equal, and the sort is cheaper
    else:
        attrs_new = "json_patch(coalesce(c.attributes, '{}'), coalesce(f.attrs, '{}'))"
        attrs_changed = ("coalesce(json_patch(coalesce(c.attributes, '{}'), f.attrs) "
                         "<> json(coalesce(c.attributes, '{}')), false)")
        attrs_value = "new_attrs"
        attrs_conflict = "json_patch(contacts.attributes, excluded.attributes)"
        create = "CREATE TEMP TABLE import_merge AS"
        collate = ""
    # Each address's first row wins; the merged values are computed once, here, from the
    # contacts as they are now, and both the report and the merge read them.
    resolve = f"""
        {create}
        SELECT r.*, (r.contact_id IS NOT NULL AND (r.new_first <> r.old_first
                     OR r.new_last <> r.old_last OR r.new_consent <> r.old_consent
                     OR r.new_source <> r.old_source OR r.attrs_changed)) AS changed
        FROM (
          SELECT f.line, f.email, c.id AS contact_id,
                 c.first_name AS old_first, c.last_name AS old_last, c.consent AS old_consent,
                 c.consent_source AS old_source, c.attributes AS old_attrs,
                 coalesce(f.first_name, c.first_name, '') AS new_first,
                 coalesce(f.last_name, c.last_name, '') AS new_last,
                 {consent} AS new_consent,
                 CASE WHEN NOT ({consent}) AND coalesce(c.consent, false) THEN ''
                      WHEN NOT ({consent}) THEN coalesce(c.consent_source, '')
                      WHEN NOT coalesce(c.consent, false) THEN :record
                      WHEN coalesce(c.consent_source, '') = '' AND {record_here} THEN :record
                      ELSE c.consent_source END AS new_source,
                 {attrs_new} AS new_attrs,
                 {attrs_changed} AS attrs_changed
          FROM (SELECT line, email, first_name, last_name, consent, attrs,
                       row_number() OVER (PARTITION BY email{collate} ORDER BY line) AS nth
                FROM import_rows) f
          LEFT JOIN contacts c ON c.partner_id = :partner AND c.email = f.email
          WHERE f.nth = 1
        ) r"""  # noqa: S608 - constant fragments; values are bound
    counts = """
        SELECT count(*),
               coalesce(sum(CASE WHEN contact_id IS NULL THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN changed THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN new_consent THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN contact_id IS NULL AND NOT new_consent
                                 THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN new_source = :record AND :record <> ''
                                 THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN contact_id IS NOT NULL AND old_consent
                                 AND new_source = old_source AND old_source <> ''
                                 THEN 1 ELSE 0 END), 0)
        FROM import_merge"""
    changes = f"""
        SELECT line, email, old_first, new_first, old_last, new_last, old_consent, new_consent,
               old_source, new_source, old_attrs, {attrs_value}
        FROM import_merge WHERE changed ORDER BY line LIMIT {MAX_REPORTED_CHANGES}"""  # noqa: S608 - constant fragments; values are bound
    duplicates = f"""
        SELECT d.line, d.email, m.line FROM import_rows d JOIN import_merge m
          ON m.email = d.email AND m.line <> d.line
        ORDER BY d.line LIMIT {MAX_REPORTED_DUPLICATES}"""  # noqa: S608 - constant fragments; values are bound
    merge = f"""
        INSERT INTO contacts (partner_id, email, first_name, last_name, attributes, consent,
                              consent_source, created_at, updated_at)
        SELECT :partner, email, new_first, new_last, {attrs_value}, new_consent, new_source,
               :now, :now
        FROM import_merge WHERE contact_id IS NULL OR changed ORDER BY line
        ON CONFLICT (partner_id, email) DO UPDATE SET
          first_name = CASE WHEN excluded.first_name = '' THEN contacts.first_name
                            ELSE excluded.first_name END,
          last_name = CASE WHEN excluded.last_name = '' THEN contacts.last_name
                           ELSE excluded.last_name END,
          attributes = {attrs_conflict},
          consent = excluded.consent,
          consent_source = excluded.consent_source,
          updated_at = excluded.updated_at"""  # noqa: S608 - constant fragments; values are bound
    return {"resolve": resolve, "counts": counts, "changes": changes,
            "duplicates": duplicates, "merge": merge}


def _json_value(value: object) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _field_changes(row) -> list[dict]:  # noqa: ANN001 - a result row
    (_line, _email, old_first, new_first, old_last, new_last, old_consent, new_consent,
     old_source, new_source, old_attrs, new_attrs) = row
    changes = []
    for name, old, new in (("first_name", old_first, new_first),
                           ("last_name", old_last, new_last)):
        if old != new:
            changes.append({"field": name, "from": old, "to": new})
    if bool(old_consent) != bool(new_consent):
        changes.append({"field": "consent", "from": "yes" if old_consent else "no",
                        "to": "yes" if new_consent else "no"})
    if (old_source or "") != (new_source or ""):
        changes.append({"field": "consent_source", "from": old_source or "",
                        "to": new_source or ""})
    before, after = _json_value(old_attrs), _json_value(new_attrs)
    for key in sorted(after):
        if before.get(key) != after[key]:
            changes.append({"field": ATTRIBUTE_PREFIX + key, "from": before.get(key, ""),
                            "to": after[key]})
    return changes


def _report_and_merge(partner_id: int, staged: int, consent: Consent, plan: ImportPlan,
                      report: ImportReport, *, dry_run: bool) -> None:
    postgres = db.engine.dialect.name == "postgresql"
    statements = _merge_sql(postgres, consent.mode)
    params = {"partner": partner_id, "record": plan.consent_record}
    execute = db.session.execute
    execute(sql(statements["resolve"]), params)
    (unique, created, updated, with_consent, new_without, recorded,
     kept) = execute(sql(statements["counts"]), params).one()
    report.created, report.updated = int(created), int(updated)
    report.unchanged = int(unique) - report.created - report.updated
    report.duplicate_count = staged - int(unique)
    report.consent.update({
        "with_consent": int(with_consent), "without_consent": int(unique) - int(with_consent),
        "new_without_consent": int(new_without), "recorded": int(recorded),
        "kept": int(kept) if consent.mode == "attested" else 0,
    })
    report.changes = [
        {"row": row[0], "email": row[1], "fields": _field_changes(row)}
        for row in execute(sql(statements["changes"]))
    ]
    if report.duplicate_count:
        report.duplicates = [{"row": row, "email": email, "first_row": first}
                             for row, email, first in execute(sql(statements["duplicates"]))]
    if not dry_run:
        now = clock.now()
        merge = sql(statements["merge"]).bindparams(bindparam("now", type_=DateTime()))
        written = execute(merge, {**params, "now": now}).rowcount
        if written != report.created + report.updated:
            log.warning("contact import for partner %s wrote %s rows, expected %s (contacts "
                        "changed during the import)", partner_id, written,
                        report.created + report.updated)
        _record_consent_history(partner_id, consent, plan, now)
    if not postgres:
        execute(sql("DROP TABLE IF EXISTS temp.import_merge"))
        execute(sql("DROP TABLE IF EXISTS temp.import_rows"))


CONSENT_HISTORY = "consent_events"
CONSENT_DETAIL_MAX = 500


def _record_consent_history(partner_id: int, consent: Consent, plan: ImportPlan,
                            now: object) -> None:
    """Add a consent-history event for each contact whose consent this import gave or changed.

    One INSERT … SELECT from the merge table into the consent history (`consent_events`):
    a new contact with consent, or a known one whose consent changed, gets an event; the
    detail is the attestation, or the file name.
    """
    detail = (consent.source if consent.mode == "attested" else plan.filename)
    db.session.execute(sql(f"""
        INSERT INTO {CONSENT_HISTORY} (contact_id, partner_id, consent, source, detail, user_id,
                                       created_at)
        SELECT c.id, :partner, m.new_consent, 'import', :detail, :user, :now
        FROM import_merge m JOIN contacts c ON c.partner_id = :partner AND c.email = m.email
        WHERE (m.contact_id IS NULL AND m.new_consent)
           OR (m.contact_id IS NOT NULL AND m.new_consent <> m.old_consent)
        """).bindparams(bindparam("now", type_=DateTime())),  # noqa: S608 - a constant name
        {"partner": partner_id, "detail": detail[:CONSENT_DETAIL_MAX], "user": plan.user_id,
         "now": now})


def _seekable_head(stream: IO[bytes]) -> bytes:
    head = stream.read(CHUNK_BYTES)
    stream.seek(0)
    return head


def import_contacts(partner_id: int, stream: IO[bytes], *, checked: bool = False,
                    plan: ImportPlan | None = None, dry_run: bool = False) -> ImportReport:
    """Import (or, for a dry run, only report on) a CSV file for a partner.

    Without a plan the file is checked whole first (size, encoding), its delimiter detected
    and its columns mapped automatically (the stream must be seekable). The rows stream
    through the parser into a staging table (memory flat), then one merge writes them, all
    in one transaction: a failure anywhere, or a dry run, leaves the contacts untouched.
    """
    if plan is None:
        label = check_import_file(stream)
        head = _seekable_head(stream)
        sample = read_sample(head, label, complete=len(head) < CHUNK_BYTES)
        plan = ImportPlan(encoding=label, delimiter=sample.delimiter)
    elif not checked:
        check_import_file(stream)
    codec, errors = codec_for(plan.encoding)
    report = ImportReport(dry_run=dry_run, encoding=plan.encoding, delimiter=plan.delimiter)
    # newline="" lets the csv module see raw line endings inside quoted fields.
    text = io.TextIOWrapper(stream, encoding=codec, errors=errors,  # type: ignore[arg-type]
                            newline="")
    try:
        return _import_rows(partner_id, text, plan, report, dry_run=dry_run)
    finally:
        text.detach()


def _import_rows(partner_id: int, text: IO[str], plan: ImportPlan, report: ImportReport, *,
                 dry_run: bool) -> ImportReport:
    reader = csv.reader(without_bom(text), delimiter=plan.delimiter)
    row, header = _find_header(reader)
    if header is None:
        raise ValidationError(_("The file has no header row."),
                              fields={"file": _("has no header row")}, code="bad_header")
    if plan.columns is not None and header != plan.columns:
        raise ValidationError(_("The file's header row changed since it was uploaded."),
                              fields={"file": _("header row changed")}, code="bad_header")
    targets = plan.targets if plan.targets is not None else auto_targets(header)
    consent = plan.consent or Consent("column" if "consent" in targets else "none")
    problems = check_targets(header, targets)
    problems.update(check_consent(targets, consent))
    if problems:
        raise ValidationError(_("The CSV header row is not usable; nothing was imported."),
                              fields={str(k if not isinstance(k, int) else header[k])[:64]: v
                                      for k, v in problems.items()}, code="bad_header")
    report.ignored_columns = [c for c, t in zip(header, targets, strict=True) if t is None and c]
    if report.ignored_columns and plan.targets is None:
        log.info("contact import for partner %s ignores columns %s", partner_id,
                 report.ignored_columns)
    report.consent = {"mode": consent.mode,
                      "column": header[targets.index("consent")] if consent.mode == "column"
                      else None,
                      "source": consent.source if consent.mode == "attested" else ""}
    rows = _rows(reader, row, header, targets, report)
    try:
        if db.engine.dialect.name == "postgresql":
            # The staging table's sorts (first row per address, file order) fit in memory.
            db.session.execute(sql("SET LOCAL work_mem = '64MB'"))
            # The join of the file's rows with the partner's contacts must never become a
            # nested loop: statistics of a table that just grew (or of the staging table,
            # never analyzed) can say "7 rows" for 20,000, and a nested loop over both is
            # quadratic (34 s for 20,000 rows measured). A hash join is linear whatever the
            # estimates.
            db.session.execute(sql("SET LOCAL enable_nestloop = off"))
            staged = _stage_postgres(rows)
        else:
            staged = _stage_sqlite(rows)
        _report_and_merge(partner_id, staged, consent, plan, report, dry_run=dry_run)
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return report


# ------------------------------------------------------------------- storing and configuring


def import_queue(connection) -> Queue:  # noqa: ANN001 - redis.Redis
    """Return the queue import jobs travel on."""
    return Queue(QUEUE_NAME, connection=connection)


def _store_upload(partner_id: int, user_id: int, filename: str, stream: IO[bytes],
                  delimiter: str | None = None) -> ImportJob:
    """Stream an upload into import_chunks (checked and detected as it goes); not committed."""
    filename = _NOT_A_LINE.sub("", filename or "").strip()[:300]
    job = ImportJob(partner_id=partner_id, user_id=user_id, filename=filename,
                    status="uploaded", total_bytes=0, processed_bytes=0, attempts=0, error="",
                    dry_run=False, consent_source="")
    db.session.add(job)
    db.session.flush()
    check = UploadCheck()
    buffer = bytearray()
    first: bytes | None = None
    seq = 0
    while block := stream.read(64 * 1024):
        check.feed(block)
        buffer += block
        if len(buffer) >= CHUNK_BYTES:
            if first is None:
                first = bytes(buffer)
            db.session.execute(insert(ImportChunk),
                               [{"job_id": job.id, "seq": seq, "data": bytes(buffer)}])
            seq += 1
            buffer.clear()
    label = check.finish()
    if first is None:
        first = bytes(buffer)
    if buffer:
        db.session.execute(insert(ImportChunk),
                           [{"job_id": job.id, "seq": seq, "data": bytes(buffer)}])
    sample = read_sample(first, label, complete=seq == 0, delimiter=delimiter)
    job.encoding, job.delimiter = label, sample.delimiter
    job.columns, job.preview = sample.columns, sample.rows
    job.mapping = auto_targets(sample.columns)
    job.total_bytes = check.size
    job.heartbeat_at = clock.now()
    return job


def upload_import(partner_id: int, user_id: int, filename: str, stream: IO[bytes]) -> ImportJob:
    """Store an upload for the mapping step (the web wizard); return the `uploaded` job.

    A file over 50 MB, empty, damaged, a workbook instead of CSV, or without a header row
    is refused here (413/422) and stores nothing.
    """
    try:
        job = _store_upload(partner_id, user_id, filename, stream)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("contact import %s uploaded: %s bytes from partner %s", job.id, job.total_bytes,
             partner_id)
    return job


OPTION_NAMES = ("mapping", "consent", "dry_run", "delimiter")


def _api_options(options: Mapping[str, str]) -> tuple[dict | None, str | None, bool, str | None]:
    """Check the API's form options before the file is read: (mapping, consent, dry run,
    delimiter)."""
    problems: dict[str, str] = {}
    for name in options:
        if name not in OPTION_NAMES:
            problems[str(name)[:64]] = _("is not an import option (use mapping, consent, "
                                         "dry_run or delimiter)")
    mapping = None
    raw = options.get("mapping")
    if raw not in (None, ""):
        if len(raw) > MAX_OPTION_CHARS:
            problems["mapping"] = _("is too long")
        else:
            try:
                mapping = json.loads(raw)
            except (ValueError, RecursionError):
                problems["mapping"] = _("is not valid JSON: send an object from column name "
                                        "to field, e.g. {\"E-Mail\": \"email\"}")
            else:
                if not isinstance(mapping, dict):
                    problems["mapping"] = _("must be a JSON object from column name to field")
                    mapping = None
    consent = options.get("consent") or None
    if consent is not None and not (consent == "none" or consent.startswith(("column:",
                                                                             "attested:"))):
        problems["consent"] = _("must be column:<column name>, attested:<where the consent "
                                "comes from> or none")
    word = (options.get("dry_run") or "").strip().lower()
    if word not in ("", "0", "1", "true", "false", "yes", "no"):
        problems["dry_run"] = _("must be 1 or 0")
    delimiter = options.get("delimiter") or None
    if delimiter is not None:
        delimiter = DELIMITER_WORDS.get(delimiter.lower() if delimiter.strip() else delimiter)
        if delimiter is None:
            problems["delimiter"] = _("must be comma, semicolon or tab")
    if problems:
        raise ValidationError(_("The import options are invalid; nothing was imported."),
                              fields=problems)
    return mapping, consent, word in ("1", "true", "yes"), delimiter


def _api_mapping(columns: list[str], mapping: dict | None, consent_option: str | None
                 ) -> tuple[list[str | None], Consent]:
    """Resolve the API's mapping and consent options against the header row (422 if wrong).

    Columns the mapping does not mention keep their automatic mapping.
    """
    targets = auto_targets(columns)
    explicit: set[int] = set()
    problems: dict[str, str] = {}
    for name, target in (mapping or {}).items():
        key = f"mapping.{str(name)[:64]}"
        if name not in columns:
            problems[key] = _("no column has this name in the file's header row")
            continue
        if columns.count(name) > 1:
            problems[key] = _("two columns have this name; rename one in the file")
            continue
        problem = _target_problem(target)
        if problem:
            problems[key] = problem
            continue
        index = columns.index(name)
        if target is not None:  # an automatic mapping to the same field gives way
            for other, auto in enumerate(targets):
                if auto == target and other not in explicit and other != index:
                    targets[other] = None
        targets[index] = target
        explicit.add(index)
    if consent_option and consent_option.startswith("column:"):
        name = consent_option[len("column:"):]
        if name not in columns:
            problems["consent"] = _("no column named “%(name)s” in the file's header row",
                                    name=name[:64])
        else:
            index = columns.index(name)
            if index in explicit and targets[index] not in (None, "consent"):
                problems["consent"] = _("“%(name)s” is mapped to another field", name=name[:64])
            for other, target in enumerate(targets):
                if target == "consent" and other != index:
                    if other in explicit:
                        problems["consent"] = _("another column is mapped to consent")
                    targets[other] = None
            targets[index] = "consent"
        consent = Consent("column")
    elif consent_option and consent_option.startswith("attested:"):
        consent = Consent("attested", consent_option[len("attested:"):].strip())
    elif consent_option == "none":
        consent = Consent("none")
    else:
        consent = Consent("column" if "consent" in targets else "none")
    for key, problem in check_targets(columns, targets).items():
        problems[f"mapping.{columns[key][:64]}" if isinstance(key, int) else key] = problem
    problems.update(check_consent(targets, consent))
    if problems:
        raise ValidationError(_("The column mapping does not fit this file; nothing was "
                                "imported."), fields=problems, code="bad_mapping")
    return targets, consent


def _queue(job: ImportJob, targets: list[str | None], consent: Consent, dry_run: bool) -> None:
    job.mapping = list(targets)
    job.consent_source = clean_source(consent.source)[0] if consent.mode == "attested" else ""
    job.dry_run = dry_run
    job.status = "queued"
    job.result = None
    job.error = ""
    job.processed_bytes = 0
    job.finished_at = None
    job.heartbeat_at = clock.now()


def start_import(partner_id: int, user_id: int, filename: str, stream: IO[bytes],
                 options: Mapping[str, str] | None = None) -> ImportJob:
    """Store an upload and queue its import or dry run (the API); return the job.

    `options` are the form's `mapping` (JSON: column name → field or null), `consent`
    (`column:<name>`, `attested:<source>` or `none`), `dry_run` and `delimiter`. Bad
    options, a file over 50 MB, damaged, without a header row, or a mapping that does not
    fit it: refused here (413/422), nothing stored.
    """
    mapping, consent_option, dry_run, delimiter = _api_options(options or {})
    try:
        job = _store_upload(partner_id, user_id, filename, stream, delimiter)
        targets, consent = _api_mapping(job.columns or [], mapping, consent_option)
        _queue(job, targets, consent, dry_run)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    enqueue_import(job.id)
    log.info("contact import %s queued (%s): %s bytes from partner %s", job.id,
             "dry run" if dry_run else "import", job.total_bytes, partner_id)
    return job


def _editable(job: ImportJob) -> None:
    if not (job.status == "uploaded" or (job.status == "done" and job.dry_run)):
        raise StateError(_("This import has already started or finished; upload the file "
                           "again to change how it is read."))


def set_import_delimiter(job: ImportJob, delimiter: str) -> ImportJob:
    """Read an uploaded file again with another delimiter (the mapping starts over)."""
    _editable(job)
    chosen = DELIMITER_WORDS.get(delimiter)
    if chosen is None:
        raise ValidationError(_("Choose comma, semicolon or tab."),
                              fields={"delimiter": _("must be comma, semicolon or tab")})
    first = db.session.scalar(select(ImportChunk.data).where(ImportChunk.job_id == job.id,
                                                             ImportChunk.seq == 0))
    if first is None:
        raise StateError(_("The uploaded file is no longer kept; upload it again."))
    complete = db.session.scalar(select(ImportChunk.seq).where(
        ImportChunk.job_id == job.id, ImportChunk.seq == 1)) is None
    sample = read_sample(bytes(first), job.encoding, complete, chosen)
    job.delimiter, job.columns, job.preview = chosen, sample.columns, sample.rows
    job.mapping = auto_targets(sample.columns)
    job.status, job.result, job.dry_run = "uploaded", None, False
    db.session.commit()
    return job


def configure_import(job: ImportJob, targets: list[str | None], consent: Consent) -> ImportJob:
    """Check the mapping chosen in the wizard and queue the dry run; 422 lists each problem.

    Problems are keyed `column-<index>`, `email`, `consent`, `consent_source`, `mapping`.
    """
    _editable(job)
    columns = job.columns or []
    if len(targets) != len(columns):
        raise ValidationError(_("The mapping does not match the file's columns."),
                              fields={"mapping": _("one field per column")})
    problems = {f"column-{k}" if isinstance(k, int) else k: v
                for k, v in check_targets(columns, targets).items()}
    problems.update(check_consent(targets, consent))
    if problems:
        raise ValidationError(_("Some columns need your attention."), fields=problems,
                              code="bad_mapping")
    _queue(job, targets, consent, dry_run=True)
    db.session.commit()
    enqueue_import(job.id)
    return job


def confirm_import(job: ImportJob) -> ImportJob:
    """Import for real what a finished dry run reported (same file, mapping and consent)."""
    if not (job.status == "done" and job.dry_run):
        raise StateError(_("Only a finished check can be imported: this file is not waiting "
                           "for a confirmation."))
    job.dry_run = False
    job.status = "queued"
    job.result = None
    job.processed_bytes = 0
    job.finished_at = None
    job.heartbeat_at = clock.now()
    db.session.commit()
    enqueue_import(job.id)
    return job


def job_consent(job: ImportJob) -> Consent | None:
    """The consent choice stored on a job (None before the mapping step)."""
    if job.status == "uploaded":
        return None
    if job.consent_source:
        return Consent("attested", job.consent_source)
    return Consent("column" if "consent" in (job.mapping or []) else "none")


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


# ------------------------------------------------------------------------- the import as a job


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
    if not claimed:
        return None
    job = db.session.get(ImportJob, job_id)
    if job is not None:
        db.session.refresh(job)
    return job


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


def consent_record(job: ImportJob, consent: Consent) -> str:
    """The text written to each contact's consent_source when this import gives consent."""
    user = db.session.get(User, job.user_id)
    who = user.email if user is not None else f"user {job.user_id}"
    day = clock.now().date().isoformat()
    if consent.mode == "attested":
        return (f"{consent.source} (attested by {who} on {day} when importing "
                f"{job.filename or 'a CSV file'}, import {job.id})")
    if consent.mode == "column":
        column = (job.columns or [])[(job.mapping or []).index("consent")]
        return (f"column “{column}” of {job.filename or 'a CSV file'}, imported by {who} on "
                f"{day} (import {job.id})")
    return ""


def job_plan(job: ImportJob) -> ImportPlan:
    """The plan a stored job is imported with."""
    if job.mapping is None:  # queued before mappings existed: automatic, as it was then
        return ImportPlan(encoding=job.encoding or "utf-8", delimiter=job.delimiter or ",",
                          user_id=job.user_id, filename=job.filename)
    consent = job_consent(job) or Consent("none")
    return ImportPlan(encoding=job.encoding or "utf-8", delimiter=job.delimiter or ",",
                      columns=job.columns, targets=job.mapping, consent=consent,
                      consent_record=consent_record(job, consent), user_id=job.user_id,
                      filename=job.filename)


def run_import_job(job_id: int) -> str:
    """Import (or dry-run) a stored upload (the RQ job); return the job's final status.

    A job another worker already claimed, or one that no longer exists, is left alone.
    """
    job = _claim(job_id)
    if job is None:
        return "skipped"
    partner_id, dry_run = job.partner_id, job.dry_run
    plan = job_plan(job)
    heartbeat = _Heartbeat(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    heartbeat.start()

    def progress(position: int) -> None:
        _set(job_id, status="importing", processed_bytes=position, heartbeat_at=clock.now())

    try:
        stream = io.BufferedReader(_ChunkReader(job_id, progress))
        result = import_contacts(partner_id, stream, checked=True, plan=plan,
                                 dry_run=dry_run).to_json()
        _finish(job_id, keep_file=dry_run, status="done", result=result)
        log.info("contact import %s %s: %s", job_id, "checked" if dry_run else "done",
                 {k: result[k] for k in ("created", "updated", "unchanged", "duplicate_count",
                                         "rejected_count")})
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


def _finish(job_id: int, *, keep_file: bool = False, **values: object) -> None:
    """End a run; the file (and its preview) is kept only after a dry run, for the import."""
    now = clock.now()
    with db.engine.begin() as conn:
        total = conn.execute(select(ImportJob.total_bytes).where(ImportJob.id == job_id)).scalar()
        if not keep_file:
            values["preview"] = None
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            processed_bytes=total or 0, finished_at=now, heartbeat_at=now, **values))
        if not keep_file:
            conn.execute(delete(ImportChunk).where(ImportChunk.job_id == job_id))


def recover_stale_imports() -> dict[str, int]:
    """Restart (once) or fail the jobs whose worker stopped; re-enqueue lost queued jobs;
    delete uploads left waiting (for a mapping or a confirmation) longer than UPLOAD_KEPT.

    A job is stale when its heartbeat is older than STALE_AFTER: running ones lost their
    worker (the import's transaction died with it, so nothing was half-written), queued ones
    lost their queue entry (Redis flushed or down when it was enqueued).
    """
    now = clock.now()
    limit = now - STALE_AFTER
    stale = db.session.execute(
        select(ImportJob.id, ImportJob.status, ImportJob.attempts).where(
            ImportJob.status.in_(("queued", "checking", "importing")),
            ImportJob.heartbeat_at < limit)
    ).all()
    counts = {"restarted": 0, "failed": 0, "requeued": 0, "expired": 0}
    for job_id, status, attempts in stale:
        if status == "queued":
            values: dict = {"heartbeat_at": now}
            counts["requeued"] += 1
        elif attempts < MAX_ATTEMPTS:
            values = {"status": "queued", "heartbeat_at": now, "processed_bytes": 0}
            counts["restarted"] += 1
            log.warning("contact import %s: its worker stopped; starting it again", job_id)
        else:
            values = {"status": "failed", "finished_at": now, "preview": None,
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
    waiting = now - UPLOAD_KEPT
    expired = db.session.scalars(select(ImportJob.id).where(
        ((ImportJob.status == "uploaded") & (ImportJob.created_at < waiting))
        | ((ImportJob.status == "done") & ImportJob.dry_run.is_(True)
           & (ImportJob.finished_at < waiting)))).all()
    for job_id in expired:
        db.session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            status="failed", finished_at=now, preview=None,
            error=_("This upload waited more than a day without being imported, so it was "
                    "deleted. Please upload the file again.")))
        db.session.execute(delete(ImportChunk).where(ImportChunk.job_id == job_id))
        db.session.commit()
        counts["expired"] += 1
    return {k: v for k, v in counts.items() if v}


def next_queued_import() -> int | None:
    """Return the oldest queued job's id (the embedded worker runs imports without Redis)."""
    return db.session.scalar(select(ImportJob.id).where(ImportJob.status == "queued")
                             .order_by(ImportJob.id).limit(1))


# ---------------------------------------------------------------------------------- for views


STATUS_WORDS = {
    "uploaded": lazy_gettext("Uploaded: waiting for you to match the columns."),
    "queued": lazy_gettext("Waiting to start…"),
    "checking": lazy_gettext("Reading the file…"),
    "importing": lazy_gettext("Reading the file…"),
    "done": lazy_gettext("Import finished."),
    "failed": lazy_gettext("Import failed."),
}
CHECK_WORDS = {
    "queued": lazy_gettext("Waiting to start the check…"),
    "checking": lazy_gettext("Checking the file…"),
    "importing": lazy_gettext("Checking the file…"),
    "done": lazy_gettext("Check finished: nothing has been imported yet."),
}

FIELD_WORDS = {
    "email": lazy_gettext("Email address"),
    "first_name": lazy_gettext("First name"),
    "last_name": lazy_gettext("Last name"),
    "consent": lazy_gettext("Consent to email (yes/no)"),
    "consent_source": lazy_gettext("Consent record"),
}


def field_words(name: str | None) -> str:
    """A field (or a report's changed field) in words: "First name", "Extra field “city”"."""
    if name is None:
        return _("Do not import")
    if name.startswith(ATTRIBUTE_PREFIX):
        return _("Extra field “%(name)s”", name=name[len(ATTRIBUTE_PREFIX):])
    return str(FIELD_WORDS.get(name, name))


def encoding_words(label: str) -> str:
    return str(ENCODINGS[label][1]) if label in ENCODINGS else ""


def delimiter_words(delimiter: str) -> str:
    return str(DELIMITERS.get(delimiter, delimiter))


def import_json(job: ImportJob) -> dict:
    """Serialize a job for the API and the polling page: status, progress, choices, report."""
    total = max(job.total_bytes, 1)
    finished = job.status in ("done", "failed")
    if job.status == "failed" and job.error:
        message = job.error
    elif job.dry_run and job.status in CHECK_WORDS:
        message = CHECK_WORDS[job.status]
    else:
        message = STATUS_WORDS[job.status]
    consent = job_consent(job)
    columns = job.columns or []
    result = None
    if job.result and "dry_run" in job.result:
        result = dict(job.result, summary=report_lines(job.result))
    elif job.result:  # a report from before mappings: its counts, in today's shape
        result = {**ImportReport().to_json(), **job.result,
                  "consent": {"mode": "none", "column": None, "source": "", "with_consent": 0,
                              "without_consent": 0, "new_without_consent": 0, "recorded": 0,
                              "kept": 0},
                  "summary": [count_words(job.result.get("created", 0),
                                          job.result.get("updated", 0), 0, False)]}
    return {
        "id": job.id,
        "status": job.status,
        "dry_run": job.dry_run,
        "filename": job.filename,
        "total": total,
        "processed": total if finished else min(job.processed_bytes, total),
        "progress": 1.0 if finished else round(min(job.processed_bytes, total) / total, 3),
        "message": str(message),
        "attempts": job.attempts,
        "encoding": job.encoding,
        "encoding_name": encoding_words(job.encoding),
        "delimiter": job.delimiter,
        "columns": columns,
        "mapping": [{"column": c, "field": t}
                    for c, t in zip(columns, job.mapping or [], strict=False)],
        "consent": None if consent is None else {
            "mode": consent.mode, "source": consent.source,
            "column": columns[job.mapping.index("consent")]
            if consent.mode == "column" and job.mapping else None},
        "preview": job.preview or [],
        "result": result,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
