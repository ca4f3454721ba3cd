"""Signed tracking tokens: a token names a send (and, for clicks, a link index) and nothing else.

A click token carries the index of the link in the published version's link list, never a
URL, so nothing in a tracking URL can choose a redirect target. Each purpose signs with its
own key derived from SECRET_KEY, so an open token can never be replayed as an unsubscribe.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import struct

# "clickid" is the click id appended to a redirect target (send + link) that a brand's site
# reports conversions with; "send" names a send alone, for conversions without a click.
PURPOSES = ("open", "click", "unsubscribe", "clickid", "send")
_WITH_LINK = ("click", "clickid")
# A hidden link the renderer adds to every sent message: no person can see it, so a click on
# it is a scanner following every href. Tokens carry link indexes as 16-bit numbers.
HONEYPOT_LINK = 65535
_MAC_BYTES = 12  # 96-bit tag: unguessable, and keeps URLs short


@functools.lru_cache(maxsize=32)
def _key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), b"lastmile/token/" + purpose.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=32)
def _pads(secret: str, purpose: str) -> tuple:
    """Return SHA-256 states already fed the HMAC inner and outer key pads (RFC 2104)."""
    block = _key(secret, purpose).ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in block)),
            hashlib.sha256(bytes(b ^ 0x5C for b in block)))


def _tag(secret: str, purpose: str, payload: bytes) -> bytes:
    """HMAC-SHA256(key, payload), truncated; starting from the keyed pads halves its cost."""
    inner_pad, outer_pad = _pads(secret, purpose)
    inner = inner_pad.copy()
    inner.update(payload)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return outer.digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, purpose: str, send_id: int, link_index: int | None = None) -> str:
    """Return a URL-safe signed token for `purpose` naming `send_id` (and `link_index`)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload = struct.pack(">Q", send_id)
    if purpose in _WITH_LINK:
        payload += struct.pack(">H", link_index if link_index is not None else 0)
    return _b64(payload + _tag(secret, purpose, payload))


def read_token(secret: str, purpose: str, token: str) -> tuple[int, int | None] | None:
    """Return (send_id, link_index) if `token` verifies for `purpose`, else None."""
    if purpose not in PURPOSES or not token or len(token) > 64:
        return None
    try:
        raw = _unb64(token)
    except (ValueError, TypeError):
        return None
    # Exactly one spelling of each token: the decoder forgives padding, unused trailing bits
    # and stray characters, so a token that is not the canonical encoding of its bytes is
    # refused rather than verified under another name.
    if _b64(raw) != token:
        return None
    size = 10 if purpose in _WITH_LINK else 8
    if len(raw) != size + _MAC_BYTES:
        return None
    payload, tag = raw[:size], raw[size:]
    if not hmac.compare_digest(tag, _tag(secret, purpose, payload)):
        return None
    send_id = struct.unpack(">Q", payload[:8])[0]
    link_index = struct.unpack(">H", payload[8:])[0] if purpose in _WITH_LINK else None
    return send_id, link_index
