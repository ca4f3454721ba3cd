"""Brand, partners, users, roles and authentication."""
