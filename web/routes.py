"""HTTP routes of the web package: the pages for brand marketers, partners and the outbox."""

# Each view module adds its routes to `bp` when imported.
from web import (  # noqa: F401 - each module registers its views on bp
    account_links,
    analytics,
    auth_views,
    brand,
    contacts,
    imports,
    launcher,
    outbox,
    partner,
    partners,
    profile,
    quick_send,
    sharing,
    users,
)
from web.base import bp

__all__ = ["bp"]
