"""Audiences: a partner's contacts chosen by a filter, counted and listed in SQL; segments.

A filter is a JSON object; every key is optional and all of them must hold:

    {"q": "ann",                          # email or names contain this (any case)
     "tags": ["vip", "newsletter"],       # the contact carries every one of these tags
     "status": "mailable",                # or a list: any of these statuses
     "attributes": {
        "city": "Boston",                 # equals (any case); a number compares as a number
        "city": {"contains": "bos"},      # contains (any case)
        "age": {"gt": 40, "lte": 65},     # numbers: gt, gte, lt, lte, eq, neq
        "renewal": {"before": "2027-01-01"},  # dates (YYYY-MM-DD): before, after
        "phone": {"exists": true}}}       # has a non-empty value (false: has none)

`clean_filter()` checks one strictly (unknown keys or operators, wrong value types, NUL
characters, broken Unicode, numbers beyond ±10^15 are a 422 naming the field) and returns it
in its canonical form, every attribute condition as `{op: value}`; that form is what a
segment stores. `audience_where()` turns it into SQL on `contacts` (status through
`contacts.with_status`), evaluated by the database on PostgreSQL and SQLite alike.

Attribute values are stored as text. A value is a number for `gt`/`lt`/... when it reads as a
plain decimal number ("42", "-3.5"), and a date for `before`/`after` when it starts with
YYYY-MM-DD (an ISO date or timestamp); other values simply do not match those operators.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    Boolean,
    Numeric,
    Select,
    and_,
    case,
    event,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from campaigns.contacts import (
    ATTRIBUTE_KEY,
    CONTACT_STATUSES,
    clean_tags,
    status_column,
    status_in,
    with_status,
)
from campaigns.models import Contact, ContactTag, Segment
from core import clock
from core.db import db
from core.errors import NotFound, StateError, ValidationError
from core.i18n import _
from core.validate import unstorable_text

FILTER_KEYS = ("q", "tags", "status", "attributes")
TEXT_OPS = ("eq", "neq", "contains")
NUMBER_OPS = ("eq", "neq", "gt", "gte", "lt", "lte")
DATE_OPS = ("before", "after")
ATTRIBUTE_OPS = ("eq", "neq", "contains", "gt", "gte", "lt", "lte", "before", "after", "exists")
MAX_CONDITIONS = 20
MAX_TAG_FILTERS = 10
MAX_VALUE = 1000
MAX_NUMBER = 10**15
Q_MAX = 320
SEGMENT_NAME_MAX = 100
MAX_SEGMENTS = 200
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A stored value is a number when it reads like one; compared as NUMERIC on PostgreSQL, which
# holds any stored value (at most 1000 characters), so the cast never fails. No bounded
# repetition and no capture groups: PostgreSQL then runs the regex ~10x faster.
NUMBER_TEXT = r"^[-+]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)$"
_NUMBER_RE = re.compile(NUMBER_TEXT)
DATE_TEXT = "^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


# ------------------------------------------------------------------------------ validation


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_problem(value: Any) -> str | None:
    if not _is_number(value):
        return _("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        return _("must be a finite number")
    if abs(value) > MAX_NUMBER:
        return _("must be between -10^15 and 10^15")
    return None


def _text_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return _("must be a string")
    if unstorable_text(value):
        return _("must not contain NUL characters or broken Unicode")
    if len(value) > MAX_VALUE:
        return _("must be at most %(n)s characters", n=MAX_VALUE)
    return None


def _clean_condition(key: str, raw: Any, where: str, problems: dict[str, str]) -> dict | None:
    if not isinstance(raw, dict):
        raw = {"eq": raw}
    if not raw:
        problems[where] = _("must name at least one of: %(ops)s", ops=", ".join(ATTRIBUTE_OPS))
        return None
    out: dict[str, Any] = {}
    for op, value in raw.items():
        at = f"{where}.{str(op)[:50]}"
        if op not in ATTRIBUTE_OPS:
            problems[at] = _("is not a comparison; use one of: %(ops)s",
                             ops=", ".join(ATTRIBUTE_OPS))
            continue
        problem: str | None = None
        if op in ("eq", "neq"):
            if _is_number(value):
                problem = _number_problem(value)
            else:
                problem = _text_problem(value)
                if problem is None:
                    value = value.strip()
        elif op == "contains":
            problem = _text_problem(value)
            if problem is None and not value.strip():
                problem = _("must not be empty")
            if problem is None:
                value = value.strip()
        elif op in ("gt", "gte", "lt", "lte"):
            problem = _number_problem(value)
        elif op in DATE_OPS:
            problem = _("must be a date written YYYY-MM-DD")
            if isinstance(value, str) and DATE_PATTERN.match(value):
                try:
                    date.fromisoformat(value)
                    problem = None
                except ValueError:
                    pass
        elif op == "exists" and not isinstance(value, bool):
            problem = _("must be true or false")
        if problem:
            problems[at] = problem
        else:
            out[op] = value
    return out


def clean_filter(raw: Any, field: str = "filter") -> dict:
    """Check an audience filter strictly; return its canonical form or raise one 422.

    Each problem is named by its place, e.g. `filter.attributes.age.gt`.
    """
    if not isinstance(raw, dict):
        raise ValidationError(_("The filter is invalid."), {field: _("must be a JSON object")})
    problems: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key in raw:
        if key not in FILTER_KEYS:
            problems[f"{field}.{str(key)[:50]}"] = _(
                "is not a filter field; use %(names)s", names=", ".join(FILTER_KEYS))
    if "q" in raw and raw["q"] not in (None, ""):
        q = raw["q"]
        if not isinstance(q, str):
            problems[f"{field}.q"] = _("must be a string")
        elif unstorable_text(q) or len(q.strip()) > Q_MAX:
            problems[f"{field}.q"] = _("must be at most %(n)s characters, without NUL "
                                       "characters or broken Unicode", n=Q_MAX)
        elif q.strip():
            out["q"] = q.strip()
    if "tags" in raw and raw["tags"] not in (None, []):
        tags = raw["tags"]
        if isinstance(tags, list) and len(tags) > MAX_TAG_FILTERS:
            problems[f"{field}.tags"] = _("at most %(n)s tags", n=MAX_TAG_FILTERS)
        else:
            try:
                out["tags"] = clean_tags(tags)
            except ValidationError as err:
                for where, message in err.fields.items():
                    problems[f"{field}.{where}"] = message
    if "status" in raw and raw["status"] not in (None, [], ""):
        status = raw["status"]
        statuses = [status] if isinstance(status, str) else status
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses) \
                or not set(statuses) <= set(CONTACT_STATUSES):
            problems[f"{field}.status"] = _("must be one of %(names)s, or a list of them",
                                            names=", ".join(CONTACT_STATUSES))
        else:
            out["status"] = [s for s in CONTACT_STATUSES if s in statuses]
    if "attributes" in raw and raw["attributes"] not in (None, {}):
        attrs = raw["attributes"]
        if not isinstance(attrs, dict):
            problems[f"{field}.attributes"] = _("must be an object of attribute conditions")
        elif len(attrs) > MAX_CONDITIONS:
            problems[f"{field}.attributes"] = _("at most %(n)s conditions", n=MAX_CONDITIONS)
        else:
            conditions: dict[str, dict] = {}
            for key, condition in attrs.items():
                where = f"{field}.attributes.{str(key)[:64]}"
                if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
                    problems[where] = _("an attribute name is letters, digits and _ "
                                        "(at most 64)")
                    continue
                cleaned = _clean_condition(key, condition, where, problems)
                if cleaned:
                    conditions[key] = cleaned
            if conditions:
                out["attributes"] = conditions
    if problems:
        raise ValidationError(_("The filter is invalid."), problems)
    return out


def clean_query_args(q: str, tags: list[str], status: str | None) -> dict:
    """Return the filter of the contact list's own query arguments (`q`, `tag`, `status`)."""
    try:
        return clean_filter({"q": q, "tags": tags, "status": status}, "args")
    except ValidationError as err:
        raise ValidationError(err.message, {
            key.removeprefix("args."): message for key, message in err.fields.items()
        }) from err


# The web form's attribute condition: one operator in words, one typed value.
FORM_OPS = ("is", "contains", "more_than", "less_than", "before", "after", "is_set")
_FORM_TO_OP = {"is": "eq", "contains": "contains", "more_than": "gt", "less_than": "lt",
               "before": "before", "after": "after", "is_set": "exists"}
FORM_FIELDS = ("q", "tag", "status", "attr", "op", "value")


def form_filter(form: dict[str, str]) -> dict:
    """Return the cleaned filter of the contacts page's form (text, tag, status and one
    attribute condition); 422 names the form field at fault."""
    raw: dict[str, Any] = {"q": form.get("q", ""), "status": form.get("status") or None}
    if form.get("tag"):
        raw["tags"] = [form["tag"]]
    attr, op, value = (form.get(k, "").strip() for k in ("attr", "op", "value"))
    if attr:
        chosen = _FORM_TO_OP.get(op or "is")
        if chosen is None:
            raise ValidationError(_("The filter is invalid."), {"op": _("choose a comparison")})
        typed: Any = value
        if chosen in ("gt", "lt") or (chosen == "eq" and _NUMBER_RE.match(value)):
            try:
                typed = float(value) if "." in value else int(value)
            except ValueError:
                if chosen != "eq":
                    raise ValidationError(_("The filter is invalid."), {
                        "value": _("must be a number for this comparison")}) from None
        if chosen == "exists":
            typed = True
        elif not value:
            raise ValidationError(_("The filter is invalid."), {"value": _("is missing")})
        raw["attributes"] = {attr: {chosen: typed}}
    try:
        return clean_filter(raw, "form")
    except ValidationError as err:
        fields = {}
        for key, message in err.fields.items():
            name = key.split(".")[1] if key.count(".") >= 1 else key
            fields[{"attributes": "value" if key.count(".") >= 3 else "attr",
                    "tags": "tag"}.get(name, name)] = message
        raise ValidationError(err.message, fields) from err


# ------------------------------------------------------------------------------ SQL


class AttributeIsNumber(FunctionElement):
    """SQL: an attribute's text reads as a plain decimal number (NUMBER_TEXT)."""

    type = Boolean()
    name = "attribute_is_number"
    inherit_cache = True


class AttributeNumber(FunctionElement):
    """SQL: an attribute's text as a number; only where `AttributeIsNumber` holds (on
    PostgreSQL the cast of any other text is an error, so it goes inside a CASE on that)."""

    type = Numeric(asdecimal=False)
    name = "attribute_number"
    inherit_cache = True


@compiles(AttributeIsNumber, "postgresql")
def _is_number_pg(element: AttributeIsNumber, compiler, **kw) -> str:  # noqa: ANN001
    return f"({compiler.process(element.clauses, **kw)} ~ '{NUMBER_TEXT}')"


@compiles(AttributeIsNumber)
def _is_number_other(element: AttributeIsNumber, compiler, **kw) -> str:  # noqa: ANN001
    return f"(lastmile_number({compiler.process(element.clauses, **kw)}) IS NOT NULL)"


@compiles(AttributeNumber, "postgresql")
def _number_pg(element: AttributeNumber, compiler, **kw) -> str:  # noqa: ANN001
    return f"CAST({compiler.process(element.clauses, **kw)} AS NUMERIC)"


@compiles(AttributeNumber)
def _number_other(element: AttributeNumber, compiler, **kw) -> str:  # noqa: ANN001
    return f"lastmile_number({compiler.process(element.clauses, **kw)})"


def _sqlite_number(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    return float(text) if _NUMBER_RE.match(text) else None


@event.listens_for(Engine, "connect")
def _register_sqlite_function(dbapi_connection, _record) -> None:  # noqa: ANN001
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("lastmile_number", 1, _sqlite_number,
                                         deterministic=True)


class AttributeIsDate(FunctionElement):
    """SQL: an attribute's text starts with YYYY-MM-DD (DATE_TEXT)."""

    type = Boolean()
    name = "attribute_is_date"
    inherit_cache = True


@compiles(AttributeIsDate, "postgresql")
def _is_date_pg(element: AttributeIsDate, compiler, **kw) -> str:  # noqa: ANN001
    return f"({compiler.process(element.clauses, **kw)} ~ '{DATE_TEXT}')"


@compiles(AttributeIsDate)
def _is_date_other(element: AttributeIsDate, compiler, **kw) -> str:  # noqa: ANN001
    value = compiler.process(element.clauses, **kw)
    return f"({value} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*')"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_COMPARE = {"eq": "__eq__", "neq": "__ne__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__",
            "lte": "__le__", "before": "__lt__", "after": "__gt__"}


def _condition_sql(key: str, condition: dict) -> list:
    """The SQL of one attribute's condition, as cheap per row as it can be: the attribute's
    text is tested once for being a number (whatever the number of comparisons), and a date
    comparison runs on the first ten characters before they are checked to be a date."""
    text = Contact.attributes[key].as_string()
    out = []
    numeric = [(op, float(value)) for op, value in condition.items()
               if op in ("gt", "gte", "lt", "lte") or (op in ("eq", "neq") and _is_number(value))]
    if numeric:
        number = AttributeNumber(text)
        compared = and_(*[getattr(number, _COMPARE[op])(value) for op, value in numeric])
        # Not a number (or no such attribute): only `neq` holds.
        otherwise = true() if all(op == "neq" for op, _value in numeric) else false()
        out.append(case((AttributeIsNumber(text), compared), else_=otherwise))
    for op, value in condition.items():
        if op in ("eq", "neq") and _is_number(value):
            continue  # compared as numbers above
        if op == "eq":
            out.append(func.lower(text) == value.lower())
        elif op == "neq":
            out.append(or_(text.is_(None), func.lower(text) != value.lower()))
        elif op == "contains":
            out.append(text.ilike(_like(value), escape="\\"))
        elif op in DATE_OPS:
            # A CASE keeps this order (PostgreSQL reorders an AND by its own cost guess): the
            # cheap comparison first, the date check only on the values it keeps.
            day = func.substr(text, 1, 10)
            out.append(case((getattr(day, _COMPARE[op])(value), AttributeIsDate(text)),
                            else_=false()))
        elif op == "exists":
            present = and_(text.is_not(None), text != "")
            out.append(present if value else ~present)
    return out


def audience_where(partner_id: int, audience: dict) -> tuple[list, bool]:
    """Return the WHERE clauses of a cleaned filter over contacts, and whether it needs the
    status (then the query must go through `contacts.with_status`)."""
    where: list = [Contact.partner_id == partner_id]
    if audience.get("q"):
        # One ILIKE over the three fields joined (a third of the work of three ILIKEs); a
        # tab, which no stored name or address holds, keeps a match from spanning two.
        pattern = _like(audience["q"])
        searched = Contact.email + "\t" + Contact.first_name + "\t" + Contact.last_name
        where.append(searched.ilike(pattern, escape="\\"))
    for tag in audience.get("tags", ()):
        where.append(exists().where(ContactTag.contact_id == Contact.id,
                                    ContactTag.partner_id == partner_id, ContactTag.tag == tag))
    for key, condition in audience.get("attributes", {}).items():
        where.extend(_condition_sql(key, condition))
    statuses = audience.get("status")
    if statuses and set(statuses) != set(CONTACT_STATUSES):
        where.append(status_in(statuses))
        return where, True
    return where, False


def _combined(partner_id: int, audiences: Sequence[dict]) -> tuple[list, bool]:
    where: list = [Contact.partner_id == partner_id]
    needs_status = False
    for audience in audiences:
        clauses, status_needed = audience_where(partner_id, audience)
        where.extend(clauses[1:])  # the first one is the partner, already there
        needs_status = needs_status or status_needed
    return where, needs_status


def audience_select(partner_id: int, audiences: Sequence[dict], *columns) -> Select:
    """Return SELECT `columns` (default: contact id and status) over the contacts matching
    every filter in `audiences` (already cleaned); the status is always joined."""
    where, _needs = _combined(partner_id, audiences)
    columns = columns or (Contact.id, status_column().label("status"))
    return with_status(select(*columns)).where(*where)


def count_audience(partner_id: int, audiences: Sequence[dict]) -> int:
    """Count a partner's contacts matching every filter (one query)."""
    where, needs_status = _combined(partner_id, audiences)
    counted = select(func.count()).select_from(Contact)
    if needs_status:
        counted = with_status(counted)
    return db.session.scalar(counted.where(*where)) or 0


def find_contacts(partner_id: int, audiences: Sequence[dict], page: int = 1,
                  per_page: int = 50) -> tuple[list[tuple[Contact, str]], int]:
    """Return one page of (contact, status) matching every filter, by id, and the total.

    The page is read first (in id order PostgreSQL stops at the page's last row); a page
    that is not full is the last one, so it gives the total, and only otherwise are the
    matching contacts counted (one more query).
    """
    where, _needs = _combined(partner_id, audiences)
    offset = (page - 1) * per_page
    rows = db.session.execute(
        with_status(select(Contact, status_column().label("status"))).where(*where)
        .order_by(Contact.id).limit(per_page).offset(offset)
    ).all()
    if 0 < len(rows) < per_page or (not rows and page == 1):
        total = offset + len(rows)
    else:
        total = count_audience(partner_id, audiences)
    return [(contact, status) for contact, status in rows], total


# ------------------------------------------------------------------------------ segments


def _clean_name(raw: Any, problems: dict[str, str]) -> str | None:
    if not isinstance(raw, str):
        problems["name"] = _("must be a string")
        return None
    name = re.sub(r"\s+", " ", raw).strip()
    if unstorable_text(raw) or CONTROL.search(raw.replace("\t", " ").replace("\n", " ")):
        problems["name"] = _("must be one line of text without control characters")
    elif not name:
        problems["name"] = _("must not be empty")
    elif len(name) > SEGMENT_NAME_MAX:
        problems["name"] = _("must be at most %(n)s characters", n=SEGMENT_NAME_MAX)
    else:
        return name
    return None


def clean_segment(data: Any, *, partial: bool) -> dict:
    """Check a segment body ({name, filter}); return the fields to store or raise one 422."""
    if not isinstance(data, dict):
        raise ValidationError(_("The segment is invalid."), {"body": _("must be an object")})
    problems: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key in set(data) - {"name", "filter"}:
        problems[str(key)[:50]] = _("is not a segment field")
    if not partial or "name" in data:
        name = _clean_name(data.get("name"), problems)
        if name is not None:
            out["name"] = name
    if not partial or "filter" in data:
        try:
            out["filter"] = clean_filter(data.get("filter"))
        except ValidationError as err:
            problems.update(err.fields)
    if problems:
        raise ValidationError(_("The segment is invalid."), problems)
    return out


def _name_taken() -> StateError:
    return StateError(_("You already have a segment with that name."),
                      fields={"name": _("already exists")}, code="duplicate")


def _name_exists(partner_id: int, name: str, exclude_id: int | None = None) -> bool:
    query = select(Segment.id).where(Segment.partner_id == partner_id,
                                     func.lower(Segment.name) == name.lower())
    if exclude_id is not None:
        query = query.where(Segment.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def create_segment(partner_id: int, user_id: int | None, *, name: str,
                   filter: dict) -> Segment:  # noqa: A002 - the API's own word
    """Save a cleaned filter under a name unique for the partner (409 if taken)."""
    if _name_exists(partner_id, name):
        raise _name_taken()
    count = db.session.scalar(select(func.count()).select_from(Segment)
                              .where(Segment.partner_id == partner_id)) or 0
    if count >= MAX_SEGMENTS:
        raise StateError(_("You have %(n)s segments, the most allowed; delete one first.",
                           n=MAX_SEGMENTS), code="too_many")
    segment = Segment(partner_id=partner_id, name=name, filter=filter, created_by=user_id)
    db.session.add(segment)
    try:
        db.session.commit()
    except IntegrityError as exc:  # the same name saved at the same moment
        db.session.rollback()
        raise _name_taken() from exc
    return segment


def update_segment(segment: Segment, **fields) -> Segment:
    """Rename a segment or replace its filter (fields already cleaned)."""
    if "name" in fields and _name_exists(segment.partner_id, fields["name"], segment.id):
        raise _name_taken()
    for key, value in fields.items():
        setattr(segment, key, value)
    segment.updated_at = clock.now()
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise _name_taken() from exc
    return segment


def delete_segment(segment: Segment) -> None:
    """Delete a segment (campaigns it was added to keep their members)."""
    db.session.delete(segment)
    db.session.commit()


def get_segment(segment_id: int) -> Segment | None:
    """Return a segment by id (callers pass it through `visible()`)."""
    if not 0 < segment_id < 2**31:
        return None
    return db.session.get(Segment, segment_id)


def partner_segment(partner_id: int, segment_id: Any) -> Segment:
    """Return the partner's segment with this id; 404 for a missing or foreign one."""
    if not isinstance(segment_id, int) or isinstance(segment_id, bool):
        raise ValidationError(_("The segment is invalid."),
                              {"segment_id": _("must be a segment id")})
    segment = get_segment(segment_id)
    if segment is None or segment.partner_id != partner_id:
        raise NotFound(_("Segment not found."))
    return segment


def list_segments(partner_id: int, page: int = 1, per_page: int = 50
                  ) -> tuple[list[Segment], int]:
    """Return one page of a partner's segments by name, and the total."""
    total = db.session.scalar(select(func.count()).select_from(Segment)
                              .where(Segment.partner_id == partner_id)) or 0
    rows = db.session.scalars(
        select(Segment).where(Segment.partner_id == partner_id)
        .order_by(func.lower(Segment.name), Segment.id)
        .limit(per_page).offset((page - 1) * per_page)).all()
    return list(rows), total


def segment_json(segment: Segment, *, with_count: bool = False) -> dict:
    """Serialize a segment; `with_count` adds how many contacts match it now."""
    out = {"id": segment.id, "partner_id": segment.partner_id, "name": segment.name,
           "filter": segment.filter or {}, "created_at": segment.created_at.isoformat(),
           "updated_at": segment.updated_at.isoformat()}
    if with_count:
        out["count"] = count_audience(segment.partner_id, [segment.filter or {}])
    return out
