"""Password rules: long enough, not too long, and not one that attackers try first."""

from __future__ import annotations

import functools
from pathlib import Path

from core.errors import ValidationError
from core.i18n import _

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1000
COMMON_FILE = Path(__file__).with_name("common_passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    """Return the bundled list of common passwords, lower-cased."""
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines
                     if line.strip() and not line.startswith("#"))


def check_password(new: object, field: str = "new_password") -> str:
    """Return `new` if it is an acceptable password; else raise ValidationError on `field`."""
    if not isinstance(new, str) or len(new) < MIN_PASSWORD_LENGTH:
        message = _("Use at least %(n)s characters.", n=MIN_PASSWORD_LENGTH)
        raise ValidationError(_("The new password is too short."), {field: message})
    if len(new) > MAX_PASSWORD_LENGTH:
        message = _("Use at most %(n)s characters.", n=MAX_PASSWORD_LENGTH)
        raise ValidationError(_("The new password is too long."), {field: message})
    if new.strip().lower() in common_passwords():
        message = _("This password is one of the most common ones; choose another.")
        raise ValidationError(_("The new password is too easy to guess."), {field: message})
    return new
