"""The partner network's emails: invitations, password resets and activation reminders.

accounts.invitations keeps the rows and the signed links; this module renders the product's
MJML email (personalization.account_mail) and hands it to the configured delivery backend
while the caller waits, like a test send (campaigns.testsend): one message to one person.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from accounts import invitations
from accounts.models import Invitation, Partner, User
from core.db import db
from core.errors import DeliveryFailed
from core.i18n import _
from delivery.backends import get_backend
from delivery.base import SENT, OutgoingMessage
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
    settings = dict(config)
    settings["SMTP_TIMEOUT"] = min(float(config.get("SMTP_TIMEOUT") or TIMEOUT_SECONDS),
                                   TIMEOUT_SECONDS)
    try:
        backend = get_backend(settings)
    except ValueError as exc:
        return str(exc)
    try:
        result = backend.deliver([OutgoingMessage(0, brand_address, to, data)])[0]
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection may fail
            backend.close()
    return "" if result.outcome == SENT else (result.error or result.outcome)


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
