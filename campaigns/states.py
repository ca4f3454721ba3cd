"""The campaign state machine: one table of allowed moves, one function that applies them.

Views, services and workers all change a campaign's status through `transition()`, so a
move that is not in `TRANSITIONS` cannot happen anywhere (it answers 409).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import StateError

if TYPE_CHECKING:
    from campaigns.models import Campaign

TRANSITIONS: dict[str, frozenset[str]] = {
    # draft: being personalized; launch goes to approval or straight to the scheduler.
    "draft": frozenset({"pending_approval", "scheduled", "cancelled"}),
    "pending_approval": frozenset({"scheduled", "rejected", "cancelled"}),
    # A rejected campaign can be edited again (back to draft) or abandoned.
    "rejected": frozenset({"draft", "cancelled"}),
    # scheduled -> completed covers a launch whose every recipient was excluded.
    "scheduled": frozenset({"running", "paused", "completed", "cancelled"}),
    "running": frozenset({"paused", "completed", "cancelled"}),
    "paused": frozenset({"running", "scheduled", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}

# Statuses in which the partner may still change slot values, sender and members.
EDITABLE = frozenset({"draft", "rejected"})
# Statuses in which the scheduler may hand out the campaign's due sends.
SENDING = frozenset({"scheduled", "running"})
FINAL = frozenset({"completed", "cancelled"})


def can_transition(current: str, to: str) -> bool:
    """Tell whether a campaign in `current` may move to `to`."""
    return to in TRANSITIONS.get(current, frozenset())


def transition(campaign: Campaign, to: str, reason: str = "") -> Campaign:
    """Move `campaign` to status `to` (no commit; the caller owns the transaction).

    Moving to the status the campaign already has is a no-op (a second SES-quota pause or a
    repeated cancel changes nothing); any other move not in TRANSITIONS raises StateError.
    """
    if to not in TRANSITIONS:
        raise ValueError(f"unknown campaign status {to!r}")
    current = campaign.status
    if current == to:
        return campaign
    if not can_transition(current, to):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none (final)"
        raise StateError(
            f"A {current} campaign cannot become {to}; allowed from {current}: {allowed}.",
            fields={"status": current},
        )
    campaign.status = to
    campaign.status_reason = reason or ""
    return campaign
