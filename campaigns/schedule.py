"""When a campaign goes out: reading `send_at` and `timezone`, and the instants the scheduler uses.

The API takes `send_at` as ISO 8601 with a UTC offset (`2026-12-08T09:00:00-06:00`): an
instant, never a wall-clock time whose zone must be guessed. `timezone` (an IANA name such as
`America/Chicago`) is the zone the partner chose it in; the campaign shows `send_at` back in
it. The database keeps naive UTC like every other time (core.clock).

With `recipient_timezone`, each recipient's first step is due at `send_at`'s wall-clock time in
the contact's own zone (a contact attribute `timezone` holding an IANA name), others at
`send_at` itself. The scheduler may then start the campaign as soon as that wall-clock time
arrives anywhere on Earth (`start_instant`); every row waits for its own `due_at`.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from core.errors import ValidationError
from core.i18n import _

# A schedule further out than this is a mistake (a typed year), not a plan.
MAX_AHEAD = timedelta(days=366)
MAX_TEXT = 64
# UTC+14 (Line Islands) is where any wall-clock time arrives first.
EARLIEST_OFFSET = timedelta(hours=14)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EXAMPLE = "2026-12-08T09:00:00-06:00"


@cache
def zone_names() -> frozenset[str]:
    """Return every IANA time zone name this system knows (zoneinfo's database)."""
    return frozenset(zoneinfo.available_timezones())


def sorted_zones() -> list[str]:
    """Return the zone names in alphabetical order (for a select)."""
    return sorted(zone_names())


def is_zone(value: Any) -> bool:
    """Tell whether `value` is a known IANA time zone name."""
    return isinstance(value, str) and len(value) <= MAX_TEXT and value in zone_names()


def clean_timezone(value: Any) -> str:
    """Return a known IANA zone name or raise 422 on `timezone`."""
    if not is_zone(value):
        raise ValidationError(
            _("Unknown time zone."),
            {"timezone": _("must be an IANA time zone name such as America/Chicago")})
    return value


def _bad(message: str) -> ValidationError:
    return ValidationError(_("The send time is invalid."), {"send_at": message})


def parse_send_at(value: Any, now: datetime) -> datetime:
    """Return `value` (ISO 8601 with an offset, later than `now`) as naive UTC, or raise 422.

    A time without an offset is refused: "09:00" means a different instant in every zone.
    """
    shape = _("must be a date and time with a UTC offset, e.g. %(example)s", example=EXAMPLE)
    if not isinstance(value, str) or len(value) > MAX_TEXT or CONTROL.search(value):
        raise _bad(shape)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _bad(shape) from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad(_("has no UTC offset: add one (for example -06:00, or Z for UTC), or the "
                     "time would mean something different in every time zone"))
    try:
        utc = parsed.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError) as exc:
        raise _bad(_("is out of range")) from exc
    if utc <= now:
        raise _bad(_("is in the past; choose a later time, or leave it empty to send as soon "
                     "as the campaign is launched"))
    if utc > now + MAX_AHEAD:
        raise _bad(_("is more than a year ahead"))
    return utc


def local_send_at(day: Any, clock_time: Any, zone: str) -> str:
    """Return the ISO 8601 instant (with offset) of a date and time read in `zone`; 422 if not.

    For forms that ask for a date, a time and a zone. A wall-clock time the zone skips (the
    hour clocks jump over) is refused rather than silently moved.
    """
    problems: dict[str, str] = {}
    try:
        parsed_day = date.fromisoformat(str(day or "").strip())
    except ValueError:
        problems["date"] = _("choose a date")
    try:
        parsed_time = time.fromisoformat(str(clock_time or "").strip())
    except ValueError:
        problems["time"] = _("choose a time")
    if problems:
        raise ValidationError(_("The send time is invalid."), problems)
    tz = zoneinfo.ZoneInfo(clean_timezone(zone))
    wall = datetime.combine(parsed_day, parsed_time.replace(tzinfo=None, microsecond=0))
    aware = wall.replace(tzinfo=tz)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        raise ValidationError(_("The send time is invalid."), {
            "time": _("does not exist in %(zone)s that day (the clocks skip it); choose "
                      "another time", zone=zone)})
    return aware.isoformat()


def to_local(instant: datetime, zone: str | None) -> datetime:
    """Return a naive-UTC instant as an aware datetime in `zone` (UTC if none or unknown)."""
    tz = zoneinfo.ZoneInfo(zone) if is_zone(zone) else UTC
    return instant.replace(tzinfo=UTC).astimezone(tz)


def send_at_json(send_at: datetime | None, zone: str | None) -> str | None:
    """Return send_at as ISO 8601 with the offset of the campaign's zone, or None."""
    return None if send_at is None else to_local(send_at, zone).isoformat()


def start_instant(send_at: datetime | None, zone: str | None, per_recipient: bool) -> \
        datetime | None:
    """Return when the scheduler may start a campaign (naive UTC); None means at once.

    Per recipient, the wall-clock time of send_at arrives first at UTC+14: starting then lets
    every recipient's row be in the ledger, due at their own local time, before it comes due.
    """
    if send_at is None or not per_recipient:
        return send_at
    wall = to_local(send_at, zone).replace(tzinfo=None)
    return min(send_at, wall - EARLIEST_OFFSET)


def recipient_due(send_at: datetime, zone: str | None, contact_zone: str) -> datetime:
    """Return (naive UTC) when send_at's wall-clock time in `zone` comes in contact_zone."""
    wall = to_local(send_at, zone).replace(tzinfo=None)
    local = wall.replace(tzinfo=zoneinfo.ZoneInfo(contact_zone))
    return local.astimezone(UTC).replace(tzinfo=None)
