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


def _alphabet_neighbour(char: str) -> str:
    """The base64 character whose value differs from `char`'s only in its lowest bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return alphabet[alphabet.index(char) ^ 1]


@given(send_id=st.integers(0, 2**63 - 1), link=st.integers(0, 65535),
       purpose=st.sampled_from(PURPOSES))
def test_only_the_canonical_spelling_of_a_token_verifies(send_id, link, purpose):
    token = make_token(SECRET, purpose, send_id, link if purpose == "click" else None)
    assert read_token(SECRET, purpose, token) is not None
    # Other spellings that a forgiving decoder maps to the very same bytes:
    padded = token + "=" * (-len(token) % 4)
    other_bits = token[:-1] + _alphabet_neighbour(token[-1])  # unused trailing bits differ
    assert base64.urlsafe_b64decode(other_bits + "=" * (-len(other_bits) % 4)) == \
        base64.urlsafe_b64decode(padded)
    for variant in (token + "==", padded + "=", other_bits, token[:4] + "." + token[4:],
                    token + "\n"):
        if variant != token:
            assert read_token(SECRET, purpose, variant) is None, variant
