"""The preview service: every preview in the product (template API, brand editor, partner
showroom and personalization pages, campaign previews) is rendered here.

- `preview_version` renders a stored template version: a published one from its frozen
  template (values validated, then the brand-lock proof run over the result), a draft by
  compiling its source on the fly.
- `preview_source` renders unsaved editor source (compiled on the fly).
- `sample_inputs` is the one home of the sample recipient, partner, sender and brand a preview
  without a real recipient shows.

Nothing here knows about campaigns or users as models: a version is anything with the
attributes `render_message` reads plus `status`, a user anything with `name` and `email`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from personalization.context import SAMPLE_PARTNER, brand_context, sample_contact
from personalization.lock import check_locked_regions
from personalization.render import Rendered, render_draft, render_message, render_preview


@dataclass(frozen=True)
class Preview:
    """A rendered preview and what the brand-lock proof found wrong with it (empty = intact).

    Drafts have no frozen template to prove against yet: their problems are always empty.
    """

    subject: str
    html: str
    text: str
    locked_region_problems: tuple[str, ...] = ()

    @property
    def locked_regions_intact(self) -> bool:
        return not self.locked_region_problems


class PreviewInputs(NamedTuple):
    """The non-slot values a preview renders with (unpack into `preview_version`)."""

    contact: dict
    partner: dict
    sender: dict
    brand: dict


def sample_inputs(user: Any, config: Mapping, partner: dict | None = None) -> PreviewInputs:
    """Return the sample recipient, with `user` as the sender, for a preview.

    `partner` is the `partner.*` fields of the partner previewing its own material (its
    showroom); without it the sample partner stands in. The sender is the user, named after
    the partner's advisor or business (or "Your Name") when the user has no name.
    """
    partner_fields = dict(SAMPLE_PARTNER) if partner is None else partner
    fallback = "Your Name" if partner is None else (
        partner_fields.get("advisor_name") or partner_fields.get("display_name")
        or partner_fields["name"])
    return PreviewInputs(contact=sample_contact(), partner=partner_fields,
                         sender={"name": user.name or fallback, "reply_to": user.email},
                         brand=brand_context(config))


def _preview(rendered: Rendered, problems: list[str] | tuple[str, ...] = ()) -> Preview:
    return Preview(subject=rendered.subject, html=rendered.html, text=rendered.text,
                   locked_region_problems=tuple(problems))


def preview_version(version: Any, slot_values: dict | None, contact: dict, partner: dict,
                    sender: dict, brand: dict, *, validate: bool = True) -> Preview:
    """Render a stored version for preview, without tracking.

    Published: `slot_values` are validated against the version's slots (SlotError) unless
    `validate` is False, which renders them exactly as the sender does (a campaign's values,
    validated when they were saved); the lock proof runs over the HTML. Draft: the source is
    compiled on the fly (TemplateError/SlotError).
    """
    if version.status == "published":
        if validate:
            rendered = render_preview(version, slot_values or {}, contact, partner, sender, brand)
        else:
            rendered = render_message(version, slot_values or {}, contact, partner, sender, brand)
        return _preview(rendered, check_locked_regions(version, rendered.html))
    return preview_source(version.mjml, version.subject, version.preheader, version.slots,
                          slot_values, contact, partner, sender, brand)


def preview_source(mjml: str, subject: str, preheader: str, slots: list[dict],
                   slot_values: dict | None, contact: dict, partner: dict, sender: dict,
                   brand: dict) -> Preview:
    """Render unsaved template source (raises TemplateError/SlotError, both DomainErrors)."""
    return _preview(render_draft(mjml, subject, preheader, slots, slot_values or {}, contact,
                                 partner, sender, brand))
