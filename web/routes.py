"""HTTP routes of the web package: the pages for brand marketers, partners and the outbox."""

# Each view module adds its routes to `bp` when imported.
from web import (  # noqa: F401
    analytics,
    auth_views,
    brand,
    contacts,
    outbox,
    partner,
    profile,
    quick_send,  # noqa: F401
)
from web.base import bp

__all__ = ["bp"]
