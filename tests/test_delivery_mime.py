"""delivery.mime: hand-built messages read back exactly by Python's email parser."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.mime import build_message

HTML = "<html><body><p>Hallo Zoë,</p>" + "<td style='color:#333'>x</td>" * 600 + "</body></html>"


def _kwargs(**overrides):
    kwargs = dict(
        message_id="42.abc@lastmile.test",
        from_name="Acme Financial",
        from_email="news@acme.example",
        reply_to="agent@partner.example",
        reply_to_name="Pat Partner",
        to="bob@example.com",
        subject="Your quarterly review",
        html=HTML,
        text="Hello Bob,\nsee you soon.\n",
        list_unsubscribe_url="https://lastmile.test/u/tok.en-123",
        list_unsubscribe_mailto="unsubscribe@acme.example?subject=42",
        send_id=42,
        date=datetime(2025, 1, 20, 9, 30, 5),
    )
    kwargs.update(overrides)
    return kwargs


def _parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)


def _lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


def _assert_wire_safe(data: bytes) -> None:
    lines = _lines(data)
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "bare CR or LF"
    assert max(len(line) for line in lines) <= 998
    assert data.isascii()


def _body(part: EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_headers_and_parts_round_trip():
    data = build_message(**_kwargs())
    _assert_wire_safe(data)
    msg = _parse(data)

    assert msg["Message-ID"] == "<42.abc@lastmile.test>"
    assert msg["Date"].datetime == datetime(2025, 1, 20, 9, 30, 5, tzinfo=UTC)
    (sender,) = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Acme Financial", "news@acme.example")
    (reply,) = msg["Reply-To"].addresses
    assert (reply.display_name, reply.addr_spec) == ("Pat Partner", "agent@partner.example")
    assert msg["To"].addresses[0].addr_spec == "bob@example.com"
    assert msg["Subject"] == "Your quarterly review"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == (
        "<https://lastmile.test/u/tok.en-123>, <mailto:unsubscribe@acme.example?subject=42>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["X-Lastmile-Send-Id"] == "42"

    assert msg.get_content_type() == "multipart/alternative"
    plain, html = list(msg.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    # ASCII bodies with short lines go out as-is; anything else is quoted-printable.
    assert plain["Content-Transfer-Encoding"] == "7bit"
    assert _body(plain) == "Hello Bob,\nsee you soon.\n"
    assert _body(html) == HTML
    assert msg.get_body(("html",)).get_content() == HTML


def test_non_ascii_subject_and_names_are_encoded_and_read_back():
    subject = "Ihre persönliche Einladung — 🎉 " + "sehr lange Betreffzeile " * 8 + "Ende"
    from_name = 'Zoë "the" Förster, Acme <Bank>'
    data = build_message(**_kwargs(subject=subject, from_name=from_name, reply_to_name="Jörg Ünal"))
    _assert_wire_safe(data)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?b?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List"))
    msg = _parse(data)
    assert msg["Subject"] == subject
    assert msg["From"].addresses[0].display_name == from_name
    assert msg["From"].addresses[0].addr_spec == "news@acme.example"
    assert msg["Reply-To"].addresses[0].display_name == "Jörg Ünal"


def test_long_non_ascii_name_decodes_exactly_per_rfc_2047():
    name = "Förderverein für Zoë und Jörg Ünal — Regionalbüro Süd"
    data = build_message(**_kwargs(from_name=name))
    _assert_wire_safe(data)
    header = data.split(b"\r\nFrom: ", 1)[1].split(b"\r\nReply-To:", 1)[0].decode("ascii")
    phrase = header.replace("\r\n", "").rsplit(" <", 1)[0]
    assert phrase.count("=?utf-8?b?") > 1
    assert str(make_header(decode_header(phrase))) == name
    assert _parse(data)["From"].addresses[0].addr_spec == "news@acme.example"


def test_ascii_specials_in_display_name_are_quoted():
    name = 'Acme "Best" Bank, Inc. \\ Co; (Ltd)'
    msg = _parse(build_message(**_kwargs(from_name=name)))
    assert msg["From"].addresses[0].display_name == name
    assert msg["From"].addresses[0].addr_spec == "news@acme.example"


def test_long_ascii_subject_folds_and_unfolds():
    subject = " ".join(f"word{i}" for i in range(60))
    data = build_message(**_kwargs(subject=subject))
    head = data.split(b"\r\n\r\n", 1)[0]
    subject_lines = head.split(b"Subject:", 1)[1].split(b"\r\nList", 1)[0].split(b"\r\n")
    assert len(subject_lines) > 3
    assert all(len(line) <= 78 for line in subject_lines)
    assert _parse(data)["Subject"] == subject


def test_subject_that_looks_like_an_encoded_word_stays_literal():
    subject = "Literal =?utf-8?q?not_decoded?= text"
    assert _parse(build_message(**_kwargs(subject=subject)))["Subject"] == subject


def test_body_lines_never_exceed_998_even_for_one_huge_line():
    html = "<p>" + "a" * 20000 + " é" * 3000 + "</p>"
    data = build_message(**_kwargs(html=html, text="x" * 5000))
    _assert_wire_safe(data)
    assert max(len(line) for line in _lines(data)) <= 78
    plain, part = list(_parse(data).iter_parts())
    assert _body(part) == html
    assert _body(plain) == "x" * 5000


def test_body_edge_cases_survive_quoted_printable():
    text = "trailing spaces   \n.leading dot\nFrom the start\n=3D not an escape\n\ttab\nend\t"
    plain, _ = list(_parse(build_message(**_kwargs(text=text))).iter_parts())
    assert _body(plain) == text


def test_optional_headers_are_left_out_when_empty():
    data = build_message(
        **_kwargs(reply_to="", from_name="", list_unsubscribe_url="", list_unsubscribe_mailto="")
    )
    msg = _parse(data)
    assert msg["Reply-To"] is None
    assert msg["List-Unsubscribe"] is None
    assert msg["List-Unsubscribe-Post"] is None
    assert msg["From"].addresses[0].display_name == ""
    assert msg["From"].addresses[0].addr_spec == "news@acme.example"


def test_mailto_prefix_is_added_and_extra_headers_are_written():
    data = build_message(
        **_kwargs(
            list_unsubscribe_url="",
            list_unsubscribe_mailto="u@acme.example",
            extra_headers={"X-Campaign": "Spring — sale", "Precedence": "bulk"},
        )
    )
    msg = _parse(data)
    assert msg["List-Unsubscribe"] == "<mailto:u@acme.example>"
    assert msg["List-Unsubscribe-Post"] is None
    assert msg["X-Campaign"] == "Spring — sale"
    assert msg["Precedence"] == "bulk"


def test_boundary_is_random_per_message():
    first = _parse(build_message(**_kwargs())).get_boundary()
    second = _parse(build_message(**_kwargs())).get_boundary()
    assert first and second and first != second


@pytest.mark.parametrize(
    "field", ["subject", "from_name", "reply_to_name", "to", "from_email", "reply_to", "message_id"]
)
@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\x00"])
def test_line_breaks_in_any_header_value_raise(field, breaker):
    base = _kwargs()
    value = base[field]
    for injected in (f"{value}{breaker}Bcc: victim@example.com", f"{breaker}{value}"):
        with pytest.raises(ValueError):
            build_message(**{**base, field: injected})


@pytest.mark.parametrize("field", ["list_unsubscribe_url", "list_unsubscribe_mailto"])
def test_line_breaks_in_unsubscribe_values_raise(field):
    with pytest.raises(ValueError):
        build_message(**_kwargs(**{field: "https://x.test/u/a\r\nBcc: victim@example.com"}))


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Ok": "a\r\nBcc: victim@example.com"},
        {"X-Bad\r\nBcc": "victim@example.com"},
        {"X Space": "v"},
        {"Subject": "second subject"},
        {"bcc:x": "v"},
    ],
)
def test_bad_extra_headers_raise(extra):
    with pytest.raises(ValueError):
        build_message(**_kwargs(extra_headers=extra))


@pytest.mark.parametrize("address", ["not-an-address", "a b@example.com", "<a@example.com>", ""])
def test_malformed_recipient_raises(address):
    with pytest.raises(ValueError):
        build_message(**_kwargs(to=address))


def test_international_domain_is_punycoded():
    msg = _parse(build_message(**_kwargs(to="bob@bücher.example")))
    assert msg["To"].addresses[0].addr_spec == "bob@xn--bcher-kva.example"


_header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200
).map(str.strip)
# Python's address parser (unlike RFC 2047) keeps the gap between two encoded-words, so the
# property checks names that fit one encoded-word; longer ones are checked by RFC decoding below.
_short_name = _header_text.filter(lambda name: len(name.encode("utf-8")) <= 45)


@settings(max_examples=150, deadline=None)
@given(
    subject=_header_text,
    name=_short_name,
    text=st.text(max_size=400),
    html=st.text(max_size=400),
)
def test_round_trip_property(subject, name, text, html):
    data = build_message(
        **_kwargs(subject=subject, from_name=name, text=text, html=html.replace("\x00", ""))
    )
    _assert_wire_safe(data)
    msg = _parse(data)
    assert msg["Subject"] == subject
    # Display names are sent with whitespace runs collapsed, as every parser reads them.
    assert msg["From"].addresses[0].display_name == " ".join(name.split())
    plain, part = list(msg.iter_parts())
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    assert _body(plain) == normalized


def test_non_ascii_or_long_line_bodies_are_quoted_printable_and_read_back():
    long_line = "<p>" + "x" * 1500 + "</p>"
    data = build_message(**_kwargs(text="Grüße, Zoë\n", html=long_line))
    _assert_wire_safe(data)
    plain, html = list(_parse(data).iter_parts())
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert _body(plain) == "Grüße, Zoë\n" and _body(html) == long_line
