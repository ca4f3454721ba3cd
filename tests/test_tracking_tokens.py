"""Tracking tokens: standard HMAC-SHA256 under per-purpose keys, and nothing else verifies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from hypothesis import given
from hypothesis import strategies as st

from core.tokens import PURPOSES, _key, make_token, read_token

SECRET = "token-test-secret"


@given(send_id=st.integers(0, 2**63 - 1), link=st.integers(0, 65535))
def test_click_tokens_are_plain_hmac_sha256_and_round_trip(send_id, link):
    token = make_token(SECRET, "click", send_id, link)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    payload = struct.pack(">QH", send_id, link)
    expected = hmac.new(_key(SECRET, "click"), payload, hashlib.sha256).digest()[:12]
    assert raw == payload + expected
    assert read_token(SECRET, "click", token) == (send_id, link)


def test_a_token_verifies_only_for_its_purpose_and_secret():
    for purpose in PURPOSES:
        token = make_token(SECRET, purpose, 42, 1 if purpose == "click" else None)
        assert read_token(SECRET, purpose, token) is not None
        assert read_token("another-secret", purpose, token) is None
        for other in set(PURPOSES) - {purpose}:
            assert read_token(SECRET, other, token) is None
