"""Builders for test data: make_partner, make_user, ... (call inside an app context)."""

from __future__ import annotations

import itertools

from accounts import services as accounts

_seq = itertools.count(1)


def make_partner(name: str | None = None, tier: str = "gold", region: str = "west", **extra):
    """Create a partner."""
    n = next(_seq)
    return accounts.create_partner(name=name or f"Partner {n}", tier=tier, region=region, **extra)


def make_user(role: str, partner=None, email: str | None = None, password: str | None = None):
    """Create a user; return (user, api_token)."""
    n = next(_seq)
    return accounts.create_user(
        email or f"{role}{n}@example.test",
        role,
        partner.id if partner is not None else None,
        password=password,
    )
