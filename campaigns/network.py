"""The partner network's emails: invitations, password resets and activation reminders.

accounts.invitations keeps the rows and the signed links; this module renders the product's
MJML email (personalization.account_mail) and hands it to the configured delivery backend
while the caller waits, like a test send (campaigns.testsend): one message to one person.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from accounts import invitations, lists
from accounts.models import Invitation, Partner, User
from accounts.services import create_partner
from core.db import db
from core.errors import DeliveryFailed, TooLarge, ValidationError
from core.i18n import _
from core.validate import sender_name_problem
from delivery.backends import deliver_now
from delivery.base import OutgoingMessage
from delivery.mime import build_message, new_message_id
from personalization.account_mail import AccountMail, render_account_mail

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0
# Marks the product's own emails (the outbox and a mail catcher show them like any other).
ACCOUNT_HEADER = "X-Lastmile-Account-Mail"
JOIN_PATH = "/join/"
RESET_PATH = "/reset/"


def _url(config: Mapping, path: str, token: str) -> str:
    return str(config["PUBLIC_BASE_URL"]).rstrip("/") + path + token


def _legal(config: Mapping) -> str:
    return _("You get this email because of your account with %(brand)s on Lastmile.",
             brand=config["BRAND_NAME"])


def _deliver(to: str, mail: AccountMail, kind: str, config: Mapping) -> str:
    """Deliver one message now; return the error ("" when the server took it)."""
    brand_address = str(config["BRAND_FROM_EMAIL"])
    try:
        data = build_message(
            message_id=new_message_id(brand_address), from_name=str(config["BRAND_NAME"]),
            from_email=brand_address, reply_to="", reply_to_name="", to=to,
            subject=mail.subject, html=mail.html, text=mail.text, list_unsubscribe_url="",
            list_unsubscribe_mailto="", send_id=0, extra_headers={ACCOUNT_HEADER: kind})
    except ValueError as exc:
        return str(exc)
    return deliver_now([OutgoingMessage(0, brand_address, to, data)], config, TIMEOUT_SECONDS)


def _invitation_mail(invitation: Invitation, inviter: User | None, token: str,
                     config: Mapping) -> AccountMail:
    brand = str(config["BRAND_NAME"])
    who = inviter.name if inviter is not None and inviter.name else brand
    if invitation.partner is not None:
        intro = _("%(who)s invited you to send %(brand)s's emails to your clients as part of "
                  "%(partner)s.", who=who, brand=brand, partner=invitation.partner.name)
    else:
        intro = _("%(who)s invited you to join the %(brand)s team on Lastmile.", who=who,
                  brand=brand)
    return render_account_mail(
        brand_name=brand, subject=_("You are invited to %(brand)s on Lastmile", brand=brand),
        heading=_("Join %(brand)s on Lastmile", brand=brand),
        paragraphs=[intro, _("Choose your name and a password to get started.")],
        button_label=_("Accept the invitation"),
        button_url=_url(config, JOIN_PATH, token),
        link_hint=_("If the button does not work, copy this link into your browser:"),
        footnote=_("The link works once and expires in %(n)s days. If you did not expect "
                   "this email, you can ignore it.", n=invitations.INVITATION_DAYS),
        legal=_legal(config))


def _send_invitation(invitation: Invitation, inviter: User | None, token: str,
                     config: Mapping) -> str:
    error = _deliver(invitation.email, _invitation_mail(invitation, inviter, token, config),
                     "invitation", config)
    if error:
        log.warning("invitation %s was not delivered: %s", invitation.id, error)
    return error


def _failed(error: str) -> DeliveryFailed:
    return DeliveryFailed(
        _("The invitation is saved but the mail server did not take it: %(error)s. Resend "
          "it when the mail server works again.", error=error[:300]), {"delivery": error[:300]})


def invite(actor: User, email: object, role: object, partner_id: object,
           config: Mapping) -> Invitation:
    """Invite someone (see accounts.invitations.check_grant for who may) and email the link."""
    invitation, token = invitations.create_invitation(actor, email, role, partner_id,
                                                      str(config["SECRET_KEY"]))
    db.session.commit()
    error = _send_invitation(invitation, actor, token, config)
    if error:
        raise _failed(error)
    return invitation


def resend(actor: User, invitation: Invitation, config: Mapping) -> Invitation:
    """Email a new link for an invitation the caller may see; the older link stops working."""
    token = invitations.renew_invitation(invitation, str(config["SECRET_KEY"]))
    db.session.commit()
    error = _send_invitation(invitation, actor, token, config)
    if error:
        raise _failed(error)
    return invitation


def invite_partner_admin(actor: User, partner: Partner, email: str,
                         config: Mapping) -> tuple[Invitation, str]:
    """Invite a new partner's admin (bulk import); return it and the delivery error, if any."""
    invitation, token = invitations.create_invitation(actor, email, "partner_admin", partner.id,
                                                      str(config["SECRET_KEY"]))
    db.session.commit()
    return invitation, _send_invitation(invitation, actor, token, config)


def request_password_reset(email: object, config: Mapping) -> None:
    """Email a reset link if the address has an active account; otherwise email that there
    is none. Either way one message is rendered and delivered, so neither the answer nor the
    time it takes tells who has an account."""
    brand = str(config["BRAND_NAME"])
    user, token = invitations.create_reset(email, str(config["SECRET_KEY"]))
    if user is not None:
        mail = render_account_mail(
            brand_name=brand, subject=_("Reset your %(brand)s password", brand=brand),
            heading=_("Choose a new password"),
            paragraphs=[_("Someone (hopefully you) asked to reset the password of your "
                          "%(brand)s account on Lastmile.", brand=brand)],
            button_label=_("Choose a new password"),
            button_url=_url(config, RESET_PATH, token),
            link_hint=_("If the button does not work, copy this link into your browser:"),
            footnote=_("The link works once and expires in %(n)s minutes. If you did not ask "
                       "for it, ignore this email: your password stays as it is.",
                       n=invitations.RESET_MINUTES),
            legal=_legal(config))
        to = user.email
    else:
        address = email.strip() if isinstance(email, str) else ""
        if "@" not in address or len(address) > 320:
            return
        mail = render_account_mail(
            brand_name=brand, subject=_("Reset your %(brand)s password", brand=brand),
            heading=_("No account with this address"),
            paragraphs=[_("Someone asked to reset the password of a %(brand)s account on "
                          "Lastmile for this address, but no active account uses it.",
                          brand=brand),
                        _("If you expected one, ask the person who manages your access.")],
            legal=_legal(config))
        to = address.lower()
    error = _deliver(to, mail, "password_reset", config)
    if error:
        log.warning("a password reset email was not delivered: %s", error)


# --- bulk import of partners from CSV -----------------------------------------------------

MAX_IMPORT_ROWS = 1000
MAX_IMPORT_BYTES = 1024 * 1024
# Header spellings accepted for each column (compared lower-cased, spaces and _ alike).
IMPORT_COLUMNS = {
    "name": ("name", "partner", "partner name", "business", "business name"),
    "tier": ("tier",),
    "region": ("region",),
    "admin_email": ("admin email", "admin", "email", "administrator email"),
}


@dataclass
class ImportRow:
    line: int
    name: str
    tier: str
    region: str
    admin_email: str
    problems: list[str] = field(default_factory=list)
    partner_id: int | None = None
    delivery_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _decode(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise TooLarge(_("The file is larger than 1 MB; split it into smaller files."))
    if b"\x00" in data:
        raise ValidationError(_("This is not a CSV file."), {"file": _("not a CSV file")})
    for codec in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise ValidationError(_("This file is not readable text."), {"file": _("not text")})


def _header_map(header: list[str]) -> dict[str, int]:
    def norm(text: str) -> str:
        return " ".join(text.strip().lower().replace("_", " ").split())

    found: dict[str, int] = {}
    for index, title in enumerate(header):
        for key, spellings in IMPORT_COLUMNS.items():
            if norm(title) in spellings and key not in found:
                found[key] = index
    missing = [k for k in IMPORT_COLUMNS if k not in found]
    if missing:
        message = _("The first line must name the columns: partner name, tier, region and "
                    "admin email.")
        raise ValidationError(message, {"file": message})
    return found


def plan_partner_import(data: bytes) -> list[ImportRow]:
    """Read a CSV of partners (name, tier, region, admin email) and check every row (dry run).

    Nothing is written. A row has problems when a value is missing or too long, the address
    is not one, or the partner name or address is already taken (here or earlier in the file).
    """
    text = _decode(data)
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise ValidationError(_("The file is empty."), {"file": _("empty")})
        columns = _header_map(header)
        rows: list[ImportRow] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_IMPORT_ROWS:
                raise ValidationError(
                    _("The file has more than %(n)s partners; split it.", n=MAX_IMPORT_ROWS),
                    {"file": _("too many rows")})
            cell = {k: (values[i].strip() if i < len(values) else "") for k, i in columns.items()}
            rows.append(ImportRow(reader.line_num, cell["name"], cell["tier"], cell["region"],
                                  cell["admin_email"].lower()))
    except csv.Error as exc:
        raise ValidationError(_("This CSV file cannot be read: %(error)s", error=str(exc)),
                              {"file": str(exc)}) from exc
    names = {n.lower() for n in db.session.scalars(select(Partner.name))}
    emails = set(db.session.scalars(select(User.email)))
    waiting = set(db.session.scalars(select(Invitation.email).where(
        Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))))
    seen_names: set[str] = set()
    seen_emails: set[str] = set()
    for row in rows:
        for key, label, limit in (("name", _("partner name"), 200), ("tier", _("tier"), 50),
                                  ("region", _("region"), 50)):
            value = getattr(row, key)
            if not value:
                row.problems.append(_("%(column)s is missing", column=label))
            elif len(value) > limit:
                row.problems.append(_("%(column)s is longer than %(n)s characters",
                                      column=label, n=limit))
            elif key in lists.KINDS:  # from the brand's lists, spelled as the list spells it
                try:
                    setattr(row, key, lists.canonical(key, [value], key)[0])
                except ValidationError as err:
                    row.problems.append(err.fields[key])
        if row.name and sender_name_problem(row.name):
            row.problems.append(_("the partner name cannot be used as a sender name: %(why)s",
                                  why=sender_name_problem(row.name)))
        if row.name.lower() in names:
            row.problems.append(_("a partner with this name exists already"))
        elif row.name.lower() in seen_names:
            row.problems.append(_("this partner name is on an earlier line too"))
        address = row.admin_email
        if (address.count("@") != 1 or len(address) > 320 or address.startswith("@")
                or address.endswith("@") or any(c.isspace() for c in address)):
            row.problems.append(_("the admin email is not an email address"))
        elif address in emails:
            row.problems.append(_("the admin email already has an account"))
        elif address in waiting:
            row.problems.append(_("the admin email already has an invitation waiting"))
        elif address in seen_emails:
            row.problems.append(_("this admin email is on an earlier line too"))
        seen_names.add(row.name.lower())
        seen_emails.add(address)
    return rows


def run_partner_import(actor: User, data: bytes, config: Mapping) -> list[ImportRow]:
    """Create the partners of the rows without problems and invite their admins by email."""
    rows = plan_partner_import(data)
    for row in rows:
        if not row.ok:
            continue
        partner = create_partner(name=row.name, tier=row.tier, region=row.region)
        row.partner_id = partner.id
        _invitation, row.delivery_error = invite_partner_admin(actor, partner, row.admin_email,
                                                               config)
    return rows


# --- activation reminders -----------------------------------------------------------------

NEXT_STEP = {
    "joined": lambda: _("Complete your profile (your name, address and phone), so the emails "
                        "you send carry your signature."),
    "profile_complete": lambda: _("Start your first campaign: pick a journey in the showroom "
                                  "and choose who receives it."),
    "first_campaign": lambda: _("Your campaign is ready: add recipients and send it."),
}


def remind_partner(actor: User, partner: Partner, stage: str, config: Mapping) -> int:
    """Nudge a partner at `stage` to the next one; return how many emails left.

    Not joined yet: the admin's latest invitation is sent again (a new 7-day link). Joined:
    its administrators get an email naming the next step and a link to sign in.
    """
    if stage in ("new", "invited"):
        latest = db.session.scalar(
            select(Invitation).where(Invitation.partner_id == partner.id,
                                     Invitation.accepted_at.is_(None))
            .order_by(Invitation.id.desc()).limit(1))
        if latest is None:
            return 0
        resend(actor, latest, config)
        return 1
    brand = str(config["BRAND_NAME"])
    step = NEXT_STEP.get(stage)
    admins = list(db.session.scalars(select(User).where(
        User.partner_id == partner.id, User.role == "partner_admin",
        User.disabled_at.is_(None))))
    sent = 0
    for admin in admins:
        mail = render_account_mail(
            brand_name=brand, subject=_("Your next step with %(brand)s", brand=brand),
            heading=_("Your next step"),
            paragraphs=[_("Hello %(name)s,", name=admin.name),
                        step() if step else _("Sign in to see what is new.")],
            button_label=_("Sign in"),
            button_url=str(config["PUBLIC_BASE_URL"]).rstrip("/") + "/login",
            link_hint=_("If the button does not work, copy this link into your browser:"),
            legal=_legal(config))
        if not _deliver(admin.email, mail, "reminder", config):
            sent += 1
    return sent
