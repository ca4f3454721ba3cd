"""The web UI: Jinja pages for brand marketers, partners and analytics, on the same services."""
