"""The hashed form of an address that suppression checks match on, in Python and in SQL.

A suppression keeps the SHA-256 of the normalized address (with a fixed, versioned prefix),
so an erased contact's address can still be recognized when it comes back (a re-import stays
suppressed) without being stored. Anyone able to run the check can of course test a guessed
address; the hash only means the list of erased addresses cannot be read back.

`email_digest()` computes it in Python; in SQL the function `lastmile_email_digest(text)`
computes the very same value: on PostgreSQL an IMMUTABLE SQL function over the built-in
sha256() (created by migration 0008_contacts), on SQLite this Python function registered on
every connection (a SQLite database written without it, e.g. from the sqlite3 shell, cannot
insert contacts). `contacts.email_hash` is a column generated from it, and
`EmailDigest(column)` calls it in a query, so a join such as
`Suppression.email_hash == EmailDigest(Send.email)` stays one query.
"""

from __future__ import annotations

import hashlib
import sqlite3

from sqlalchemy import String, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

PREFIX = "lastmile-suppression-v1:"
SQL_FUNCTION = "lastmile_email_digest"


def email_digest(normalized: str) -> str:
    """Return the hex SHA-256 of an already normalized address (see contacts.loose_email)."""
    return hashlib.sha256((PREFIX + normalized).encode("utf-8")).hexdigest()


def _sqlite_digest(value: str | None) -> str | None:
    return None if value is None else email_digest(value.lower())


@event.listens_for(Engine, "connect")
def _register_sqlite_function(dbapi_connection, _record) -> None:  # noqa: ANN001
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function(SQL_FUNCTION, 1, _sqlite_digest, deterministic=True)


class EmailDigest(FunctionElement):
    """SQL: the email_digest() of a column of addresses (lower-cased first, as normalizing does;
    stored addresses are normalized already, this only guards rows written around it)."""

    type = String(64)
    name = "email_digest"
    inherit_cache = True


@compiles(EmailDigest)
def _compile(element: EmailDigest, compiler, **kw) -> str:  # noqa: ANN001
    return f"{SQL_FUNCTION}({compiler.process(element.clauses, **kw)})"
