"""Request validators shared by every routes module, and the guards every request passes.

Whatever a client sends, a bad value is a 4xx with the JSON error shape and changes nothing:
ids beyond what the database holds are simply not found, numbers are range-checked before
they reach SQL, and text with NUL characters or lone surrogates (which no database column
can store) is refused at the door.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request
from werkzeug.routing import IntegerConverter

from core.errors import BadRequest, ValidationError
from core.i18n import _, lazy_gettext

DB_INT_MAX = 2**31 - 1  # ids and counts are PostgreSQL `integer` columns
MAX_PAGE = 1_000_000
MAX_JSON_DEPTH = 32


class DbIdConverter(IntegerConverter):
    """`<int:...>` in every route: an id past what the database holds names no row.

    It becomes 0, which no row has, so the view answers 404 exactly like for a missing id
    (refusing to match instead would make Werkzeug answer 405 where another method matches).
    """

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= DB_INT_MAX else 0


def is_db_id(value: Any) -> bool:
    """Tell whether a JSON value can be a row id: a whole number the database can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= DB_INT_MAX


def unstorable_text(value: str) -> bool:
    """Tell whether text holds a NUL character or a lone surrogate (no column stores either)."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


UNSTORABLE = lazy_gettext("must not contain NUL characters or invalid Unicode")


def _check_tree(data: Any, check_text: bool) -> None:
    """Walk parsed JSON without recursion: bounded depth, no unstorable text anywhere.

    Unstorable text is a 422 naming where it is (`slot_values.headline`), like any field.
    """
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(_("The JSON body is nested more than %(n)s levels deep.",
                               n=MAX_JSON_DEPTH))
        if isinstance(item, str):
            if check_text and unstorable_text(item):
                raise ValidationError(_("Some fields are invalid."),
                                      {where or "body": str(UNSTORABLE)})
        elif isinstance(item, dict):
            for key, value in item.items():
                name = f"{where}.{key}" if where else str(key)
                if check_text and unstorable_text(str(key)):
                    raise ValidationError(_("Some fields are invalid."),
                                          {where or "body": str(UNSTORABLE)})
                stack.append((value, depth + 1, name[:200]))
        elif isinstance(item, list):
            stack.extend((value, depth + 1, f"{where}.{i}" if where else str(i))
                         for i, value in enumerate(item))


def parse_json(raw: bytes | str, *, check_text: bool = True) -> Any:
    """Parse JSON from a client: 400 for invalid, too deep or (unless the caller validates
    every value itself: `check_text=False`) unstorable content."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(_("Request body must be valid JSON.")) from exc
    except RecursionError as exc:
        raise BadRequest(_("The JSON body is nested more than %(n)s levels deep.",
                           n=MAX_JSON_DEPTH)) from exc
    _check_tree(data, check_text)
    return data


def json_body() -> dict:
    """Return the request's JSON object or raise 400 with a clear message."""
    data = parse_json(request.get_data(cache=True) or b"")
    if not isinstance(data, dict):
        raise BadRequest(_("Request body must be a JSON object."))
    return data


def int_arg(name: str, default: int | None = None, *, minimum: int = 0,
            maximum: int = DB_INT_MAX) -> int | None:
    """Return the query argument `name` as a whole number in [minimum, maximum] (else 400)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(_("%(name)s must be a whole number.", name=name)) from exc
    if not minimum <= value <= maximum:
        raise BadRequest(_("%(name)s must be between %(low)s and %(high)s.", name=name,
                           low=minimum, high=maximum))
    return value


def _refuse_unstorable_input() -> None:
    """Refuse NUL characters anywhere in the address (400), or in a query argument or form
    field (422 naming it, like any invalid field): no column can store them."""
    if "\x00" in request.path:
        raise BadRequest(_("The address may not contain NUL characters."))
    fields = {name: str(UNSTORABLE) for name, values in request.args.lists()
              if any(unstorable_text(v) for v in values)}
    # Multipart bodies (file uploads) are left to their views, which check size first.
    if request.mimetype == "application/x-www-form-urlencoded":
        fields.update({name: str(UNSTORABLE) for name, values in request.form.lists()
                       if any(unstorable_text(v) for v in values)})
    if fields:
        raise ValidationError(_("Some fields are invalid."), fields)


def init_app(app: Flask) -> None:
    """Install the guards (call before registering blueprints: the converter binds then)."""
    app.url_map.converters["int"] = DbIdConverter
    app.before_request(_refuse_unstorable_input)


class Fields:
    """Collect every field problem, then raise one 422 listing them all."""

    def __init__(self, data: dict):
        self.data = data
        self.problems: dict[str, str] = {}

    def text(self, name: str, *, required: bool = True, max_length: int = 200) -> str | None:
        value = self.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.problems[name] = "is required"
            return None
        if not isinstance(value, str):
            self.problems[name] = "must be a string"
            return None
        value = value.strip()
        if len(value) > max_length:
            self.problems[name] = f"must be at most {max_length} characters"
        if "\r" in value or "\n" in value:
            self.problems[name] = "must be a single line"
        return value

    def url(self, name: str) -> str | None:
        value = self.text(name, required=False, max_length=2000)
        if value and not is_http_url(value):
            self.problems[name] = "must be an http(s) URL"
        return value

    def check(self, message: str = "Some fields are invalid.") -> None:
        if self.problems:
            raise ValidationError(message, self.problems)


# Characters that make a display name read as an address ("Security Team <security@bank>"),
# after NFKC folding (which turns fullwidth and small forms such as U+FF20 into "@" and "<").
_ADDRESS_LIKE = frozenset("@<>\u2039\u203a\u2329\u232a\u27e8\u27e9\u3008\u3009\u300a\u300b")


def sender_name_problem(name: str) -> str | None:
    """Return why `name` cannot be a sender's display name, or None.

    Mail shows it beside the brand's address ("Name via Brand <news@brand>"): a name that
    holds an address of its own (an @, or angle brackets, in any width) could pass for the
    sender, so it is refused wherever a sender name is set.
    """
    if any(ch in _ADDRESS_LIKE for ch in unicodedata.normalize("NFKC", name)):
        return _("must be a name, not an email address: it may not contain @, < or >")
    return None


def is_http_url(value: str) -> bool:
    """Tell whether `value` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value



def page_args(default_size: int = 50, max_size: int = 500) -> tuple[int, int]:
    """Return (page, per_page) from the query string, 1-based, clamped."""
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(max_size, max(1, int(request.args.get("per_page", default_size))))
    except ValueError as exc:
        raise BadRequest(_("page and per_page must be whole numbers.")) from exc
    if page > MAX_PAGE:  # past any real list, and its offset would overflow the database
        raise BadRequest(_("page must be at most %(n)s.", n=MAX_PAGE))
    return page, per_page
