"""Small request-body validators shared by every routes module."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request

from core.errors import BadRequest, ValidationError


def json_body() -> dict:
    """Return the request's JSON object or raise 400 with a clear message."""
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("Request body must be valid JSON.")
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object.")
    return data


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


def is_http_url(value: str) -> bool:
    """Tell whether `value` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value


MAX_PAGE = 1_000_000


def page_args(default_size: int = 50, max_size: int = 500) -> tuple[int, int]:
    """Return (page, per_page) from the query string, 1-based, clamped."""
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(max_size, max(1, int(request.args.get("per_page", default_size))))
    except ValueError as exc:
        raise BadRequest("page and per_page must be whole numbers.") from exc
    if page > MAX_PAGE:  # past any real list, and its offset would overflow the database
        raise BadRequest(f"page must be at most {MAX_PAGE}.")
    return page, per_page
