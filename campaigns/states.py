"""The campaign state machine: one table of actions, one function that applies them.

Each action names the statuses it may start from and the status it leads to, so both "is
this move legal" and "may this action happen now" are answered here and nowhere else.
Services and workers change a campaign's status only through `apply()`; an action that is
not allowed from the current status answers 409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import StateError

if TYPE_CHECKING:
    from campaigns.models import Campaign

_ACTIVE = ("draft", "pending_approval", "rejected", "scheduled", "running", "paused")

# action -> {from status: to status}
ACTIONS: dict[str, dict[str, str]] = {
    # Launch: to the brand's approval queue, or straight to the scheduler.
    "submit": {"draft": "pending_approval"},
    "schedule": {"draft": "scheduled"},
    "approve": {"pending_approval": "scheduled"},
    "reject": {"pending_approval": "rejected"},
    # A rejected campaign returns to draft as soon as the partner edits it.
    "edit": {"rejected": "draft"},
    # The ledger starts sending a scheduled campaign; resume picks it up again.
    "start": {"scheduled": "running"},
    # Pausing twice (a second SES quota hit) changes nothing. A scheduled campaign starts
    # within a scheduler tick; there is nothing to pause before it does.
    "pause": {"running": "paused", "paused": "paused"},
    "resume": {"paused": "running"},
    "complete": {"running": "completed"},
    "cancel": {**{status: "cancelled" for status in _ACTIVE}, "cancelled": "cancelled"},
    # Scheduling (campaigns.schedule). The send time (send_at, timezone) may change until the
    # campaign starts, in place: it is not content, so an approval still holds. Content
    # (slot values, sender, members) is frozen once launched: to change it, `unschedule`
    # takes a scheduled or pending campaign back to draft, and it must be launched (and, if
    # the journey says so, approved) again.
    "reschedule": {status: status for status in ("draft", "rejected", "pending_approval",
                                                 "scheduled")},
    "unschedule": {"scheduled": "draft", "pending_approval": "draft"},
}

# Statuses in which the partner may still change slot values, sender and members.
EDITABLE = frozenset({"draft", "rejected"})


def allowed(campaign: Campaign, action: str) -> bool:
    """Tell whether `action` may be applied to the campaign in its current status."""
    return campaign.status in ACTIONS[action]


def apply(campaign: Campaign, action: str, reason: str = "") -> Campaign:
    """Apply `action` to `campaign` (no commit; the caller owns the transaction)."""
    moves = ACTIONS[action]
    current = campaign.status
    if current not in moves:
        starts = ", ".join(sorted(moves))
        raise StateError(f"Cannot {action} a {current} campaign (only from: {starts}).",
                         fields={"status": current})
    if moves[current] != current:
        campaign.status = moves[current]
        campaign.status_reason = reason or ""
    return campaign


def require_editable(campaign: Campaign) -> None:
    """Refuse (409) any change to slot values, sender or members once a campaign has left draft."""
    if campaign.status not in EDITABLE:
        raise StateError(f"A {campaign.status} campaign can no longer be changed.",
                         fields={"status": campaign.status})
