"""Tracking logic: where a click goes, recording hits, unsubscribing.

The redirect target of a click is only ever one of the send's own links: the token names a
link *index*, and the index picks that link's target as the worker rendered it when it sent the
message (stored on the send row, `Send.link_targets`, and cached in Redis). Nothing in the
request can choose or alter the target.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

import redis
from flask import Flask, current_app
from sqlalchemy import select, update

from accounts.models import Partner
from campaigns.models import Campaign, Contact, Send
from campaigns.sending import compose_message, redirect_targets
from campaigns.suppression import suppress_email
from core import clock, tokens
from core.db import db
from core.errors import StateError
from core.i18n import _
from core.redis import configured_redis
from core.tokens import HONEYPOT_LINK
from core.validate import is_http_url
from journeys.models import TemplateVersion
from journeys.states import allowed
from tracking import conversions
from tracking.ingest import STREAM, Hit, apply_hits, hit_fields, hit_from_entry, new_key
from tracking.models import Event

log = logging.getLogger("lastmile.tracking")

LINK_CACHE_TTL = 180 * 24 * 3600  # seconds a send's link targets stay cached in Redis
_LOCAL_CACHE_SIZE = 20_000
HONEYPOT = "honeypot"  # click() result: a recorded honeypot hit that redirects nowhere

# KEYS[1] = the send's link hash, KEYS[2] = the event stream; ARGV[1] = link index,
# ARGV[2..] = the entry's field/value pairs. One round trip; the hit is appended only if the
# link is known, so an unknown link index records nothing.
_CLICK_LUA = """
local url = redis.call('HGET', KEYS[1], ARGV[1])
if not url then
  if redis.call('EXISTS', KEYS[1]) == 1 then return '' end
  return false
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
return url
"""


def link_key(send_id: int) -> str:
    """Return the Redis hash holding one send's link targets."""
    return f"lastmile:links:{send_id}"


# --- link targets ---------------------------------------------------------------------------

def send_link_targets(send_id: int) -> list[str] | None:
    """Return a send's link targets by index; None if the send does not exist.

    One primary-key read of the targets the worker stored with the row when it recorded the
    message as sent. Only where that column is NULL (mail sent before migration 0006, or a
    click that outran the worker's commit) is the message rendered again to find them.
    """
    found = db.session.execute(select(Send.link_targets).where(Send.id == send_id)).first()
    if found is None:
        return None
    stored = found[0]
    if stored is None:
        return compute_link_targets(send_id)
    return redirect_targets(stored) if isinstance(stored, list) else []


def compute_link_targets(send_id: int) -> list[str] | None:
    """Render a send's message and return its link targets; None if the send does not exist.

    Legacy fallback only, for a send whose row has no stored `link_targets` (see
    send_link_targets). The message is composed by the very function the worker sent it with
    (same version, slot values, member overrides and merge fields), so a click can only lead
    where the mail's link led. Only http(s) targets can be redirected to; anything else is ''.
    """

    send = db.session.get(Send, send_id)
    if send is None:
        return None
    version = db.session.get(TemplateVersion, send.template_version_id)
    if version is None or not allowed(version, "pin") or not version.links:
        return []
    campaign = db.session.get(Campaign, send.campaign_id)
    contact = db.session.get(Contact, send.contact_id)
    if campaign is None or contact is None:
        return []  # nothing left to rebuild the message from: no redirect target
    composed = compose_message(campaign, send.step_index, contact,
                               db.session.get(Partner, send.partner_id) or {}, send_id=send.id,
                               config=current_app.config, version=version)
    return redirect_targets(composed.link_targets)


def publish_link_targets(send_id: int, urls: list[str], r: redis.Redis | None = None) -> None:
    """Cache a send's rendered link targets (index-aligned with the version's links).

    The first click of a send whose targets are not cached reads them from the send row
    (send_link_targets) and publishes them here, so later clicks need no database read.
    """
    clean = {str(i): u for i, u in enumerate(urls) if u and is_http_url(u)}
    r = r if r is not None else get_recorder(current_app).redis
    if r is None:
        _local_cache_put(send_id, [u if u and is_http_url(u) else "" for u in urls])
        return
    pipe = r.pipeline(transaction=True)
    pipe.delete(link_key(send_id))
    pipe.hset(link_key(send_id), mapping={"_": "1", **clean})
    pipe.expire(link_key(send_id), LINK_CACHE_TTL)
    pipe.execute()


_LOCAL: OrderedDict[int, list[str]] = OrderedDict()


def _local_cache_put(send_id: int, urls: list[str]) -> None:
    _LOCAL[send_id] = urls
    _LOCAL.move_to_end(send_id)
    while len(_LOCAL) > _LOCAL_CACHE_SIZE:
        _LOCAL.popitem(last=False)


def _target_from_list(urls: list[str] | None, link_index: int) -> str | None:
    if not urls or link_index >= len(urls):
        return None
    return urls[link_index] or None


# --- recording hits (the request path) -------------------------------------------------------

class Recorder:
    """Per-process request-side recorder: verifies a token and appends one hit."""

    def __init__(self, app: Flask):
        self.app = app
        self.secret: str = app.config["SECRET_KEY"]
        # A hit must not hang on a sick Redis: five seconds, then it goes to the database.
        self.redis: redis.Redis | None = configured_redis(app.config, timeout=5)
        self._click = self.redis.register_script(_CLICK_LUA) if self.redis else None
        param = (app.config.get("CLICK_ID_PARAM") or "").strip()
        self.click_param = "" if param == conversions.OFF else param

    def open(self, token: str, user_agent: str, ip: str, how: str = "") -> bool:
        """Record an open if `token` verifies; tell whether it did."""
        parsed = tokens.read_token(self.secret, "open", token)
        if parsed is None:
            return False
        self._append(hit_fields("open", parsed[0], None, user_agent, ip, clock.now(), how))
        return True

    def click(self, token: str, user_agent: str, ip: str, how: str = "") -> str | None:
        """Record a click and return its redirect target; None (nothing recorded) if invalid."""
        parsed = tokens.read_token(self.secret, "click", token)
        if parsed is None:
            return None
        send_id, link_index = parsed
        fields = hit_fields("click", send_id, link_index, user_agent, ip, clock.now(), how)
        if link_index == HONEYPOT_LINK:
            with self.app.app_context():
                exists = db.session.get(Send, send_id) is not None
            if not exists:
                return None
            self._append(fields)
            return HONEYPOT
        urls: list[str] | None = None
        if self.redis is not None:
            try:
                args = [str(link_index)]
                for k, v in fields.items():
                    args += [k, v]
                url = self._click(keys=[link_key(send_id), STREAM], args=args)
                if url is not None:
                    return self._with_click_id(url.decode(), send_id, link_index) or None
            except redis.RedisError:
                log.exception("redis unavailable on click; recording in the database")
        else:
            urls = _LOCAL.get(send_id)
        if urls is None:
            with self.app.app_context():
                urls = send_link_targets(send_id)
                if urls is not None:
                    try:
                        publish_link_targets(send_id, urls, self.redis)
                    except redis.RedisError:
                        log.warning("could not cache link targets of send %s", send_id)
        url = _target_from_list(urls, link_index)
        if url is None:
            return None
        self._append(fields)
        return self._with_click_id(url, send_id, link_index)

    def _with_click_id(self, url: str, send_id: int, link_index: int) -> str:
        # The destination learns which click brought the visitor (for conversions); one more
        # HMAC from precomputed pads, no I/O.
        if not url or not self.click_param:
            return url
        return conversions.with_click_id(
            url, self.click_param, conversions.click_id(self.secret, send_id, link_index))

    def _append(self, fields: dict[str, str]) -> None:
        if self.redis is not None:
            try:
                self.redis.xadd(STREAM, fields)
                return
            except redis.RedisError:
                log.exception("redis unavailable; recording the hit in the database")
        with self.app.app_context():
            hit = hit_from_entry("", fields)
            hit.key = new_key()
            try:
                apply_hits([hit])
                db.session.commit()
            except Exception:
                db.session.rollback()
                raise


def get_recorder(app: Flask) -> Recorder:
    """Return this app's recorder (one per process, created on first use)."""
    rec = app.extensions.get("lastmile_tracking_recorder")
    if rec is None:
        rec = Recorder(app)
        app.extensions["lastmile_tracking_recorder"] = rec
    return rec


# --- unsubscribe ---------------------------------------------------------------------------

def send_for_unsubscribe(token: str) -> Send | None:
    """Return the send an unsubscribe token names, or None if it does not verify."""
    parsed = tokens.read_token(current_app.config["SECRET_KEY"], "unsubscribe", token)
    if parsed is None:
        return None
    return db.session.get(Send, parsed[0])


def masked_email(email: str) -> str:
    """Return an address with most of its local part hidden (for the confirmation page)."""
    local, _, domain = email.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


def unsubscribe(send: Send, user_agent: str = "", ip: str = "") -> None:
    """Suppress the send's address brand-wide and record one unsubscribe event (idempotent)."""

    suppress_email(send.email, "unsubscribed", detail=f"one-click unsubscribe, send {send.id}")
    apply_hits([Hit("unsubscribe", send.id, clock.now(), None, user_agent, ip,
                    key=f"unsub:{send.id}")])
    db.session.commit()


# --- erasure ------------------------------------------------------------------------------

def forget_sends(send_ids: Sequence[int]) -> None:
    """Erasure hook (campaigns.erasure): strip the person from these sends' tracking data.

    Events keep their kind, time and machine flag (the rollups were counted from them) but
    lose the IP address and user agent; the sends' cached link targets are dropped. No commit:
    it runs in the erasing transaction.
    """
    ids = list(send_ids)
    if not ids:
        return
    for start in range(0, len(ids), 5000):
        db.session.execute(update(Event).where(Event.send_id.in_(ids[start:start + 5000]))
                           .values(ip="", user_agent=""))
    for send_id in ids:
        _LOCAL.pop(send_id, None)
    client = get_recorder(current_app).redis
    if client is not None:
        try:
            for start in range(0, len(ids), 1000):
                client.delete(*[link_key(i) for i in ids[start:start + 1000]])
        except redis.RedisError as exc:
            # Refuse rather than leave the links redirecting: the caller's transaction rolls
            # back and nothing is erased.
            log.warning("erasure refused: could not drop cached link targets (%s)", exc)
            raise StateError(_("The contact could not be erased right now (the tracking cache "
                               "did not answer). Nothing was erased; try again in a few "
                               "minutes.")) from exc
