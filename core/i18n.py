"""Words people read go through Flask-Babel: `_()` / `ngettext()` here and in templates.

English is the source language; catalogs live under translations/ (`make messages` extracts
the strings). The locale is the best match of the browser's Accept-Language among the
configured LANGUAGES; outside a request (workers) it is the default, English.
"""

from __future__ import annotations

from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel, gettext, lazy_gettext, ngettext

__all__ = ["_", "lazy_gettext", "ngettext", "init_app"]

_ = gettext
babel = Babel()


def _select_locale() -> str:
    supported = current_app.config.get("LANGUAGES") or ["en"]
    if has_request_context():
        return request.accept_languages.best_match(supported) or supported[0]
    return supported[0]


def init_app(app: Flask) -> None:
    """Attach Flask-Babel: `_` and `ngettext` become available in every template."""
    app.config.setdefault("LANGUAGES", ["en"])
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(app.root_path + "/translations"))
    babel.init_app(app, locale_selector=_select_locale)
