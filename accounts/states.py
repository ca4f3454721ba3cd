"""The profile-change state machine: one table of actions, one function that applies them.

Same shape as campaigns.states: a partner's change to a profile field the brand approves
first is `pending` until a brand user approves or rejects it, or the partner replaces or
withdraws it (`supersede`). Services change a change's status only through `apply()`.
"""

from __future__ import annotations

from datetime import datetime

from accounts.models import ProfileChange
from core.errors import StateError
from core.i18n import _

# action -> {from status: to status}
CHANGE_ACTIONS: dict[str, dict[str, str]] = {
    # A brand user decides: the approved value is copied into the profile emails use.
    "approve": {"pending": "approved"},
    "reject": {"pending": "rejected"},
    # The partner sent another value (or the approved one again), or the brand set the field.
    "supersede": {"pending": "superseded"},
}


def allowed(change: ProfileChange, action: str) -> bool:
    """Tell whether `action` may be applied to the change in its current status."""
    return change.status in CHANGE_ACTIONS[action]


def apply(change: ProfileChange, action: str, *, by: int | None = None,
          at: datetime | None = None, reason: str = "") -> ProfileChange:
    """Apply `action` to `change` (no commit; the caller owns the transaction)."""
    moves = CHANGE_ACTIONS[action]
    if change.status not in moves:
        raise StateError(_("This profile change is no longer waiting for approval."),
                         fields={"status": change.status})
    change.status = moves[change.status]
    change.decided_by = by
    change.decided_at = at
    change.reason = reason
    return change
