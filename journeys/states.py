"""The journey and template-version state machines: one table of actions per model.

Same shape as campaigns.states: each action names the statuses it may start from and the
status it leads to, so both "is this move legal" and "may this action happen now" are answered
here and nowhere else. Services change a journey's or a version's status only through
`apply()`, and pages and queries ask `allowed()` (or the table) instead of comparing statuses;
an action that is not allowed from the current status answers 409.
"""

from __future__ import annotations

from core.errors import StateError
from core.i18n import lazy_gettext as _l
from journeys.models import Journey, TemplateVersion

# action -> {from status: to status}
JOURNEY_ACTIONS: dict[str, dict[str, str]] = {
    # A published journey is frozen: change it through a new version (a draft copy).
    "edit": {"draft": "draft"},
    "new_version": {"published": "published"},
    "publish": {"draft": "published"},
    # Archiving takes a journey out of the catalog; its running campaigns continue.
    "archive": {"draft": "archived", "published": "archived"},
    # A partner may pick (see in the catalog, launch a campaign from) only a published journey.
    "pick": {"published": "published"},
}

VERSION_ACTIONS: dict[str, dict[str, str]] = {
    # Publishing compiles the version once; a published version never changes again.
    "publish": {"draft": "published"},
    # A journey step pins only a published (compiled, frozen) version.
    "pin": {"published": "published"},
}

# Why an action is refused, formatted with the journey or version as `it`.
_REFUSALS: dict[tuple[type, str], str] = {
    (Journey, "edit"): _l("Only draft journeys can be edited; create a new version instead."),
    (Journey, "new_version"):
        _l("Journey is {it.status}; only a published journey gets a new version."),
    (Journey, "publish"): _l("Journey is {it.status}; only drafts can be published."),
    (Journey, "archive"): _l("Journey is already archived."),
    (Journey, "pick"): _l("Journey is {it.status}; only published journeys can be used."),
    (TemplateVersion, "publish"):
        _l("Version {it.version} is already published; save a new draft first."),
    (TemplateVersion, "pin"): _l("Version {it.version} is a draft; publish it first."),
}


def _table(item: Journey | TemplateVersion) -> dict[str, dict[str, str]]:
    return JOURNEY_ACTIONS if isinstance(item, Journey) else VERSION_ACTIONS


def statuses(model: type[Journey] | type[TemplateVersion], action: str) -> list[str]:
    """Return the statuses `action` may start from, for queries (`status.in_(...)`)."""
    table = JOURNEY_ACTIONS if model is Journey else VERSION_ACTIONS
    return sorted(table[action])


def allowed(item: Journey | TemplateVersion, action: str) -> bool:
    """Tell whether `action` may be applied to the journey or version in its current status."""
    return item.status in _table(item)[action]


def require(item: Journey | TemplateVersion, action: str) -> None:
    """Refuse (409, the current status in `fields`) an action not allowed right now."""
    if not allowed(item, action):
        raise StateError(str(_REFUSALS[(type(item), action)]).format(it=item),
                         fields={"status": item.status})


def apply(item: Journey | TemplateVersion, action: str) -> Journey | TemplateVersion:
    """Apply `action` to a journey or version (no commit; the caller owns the transaction)."""
    require(item, action)
    item.status = _table(item)[action][item.status]
    return item
