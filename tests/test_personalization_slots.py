"""Slot schemas and slot values: every constraint, every failing slot reported at once."""

from __future__ import annotations

import pytest

from core.errors import SlotError
from personalization.slots import (
    HARD_MAX_LENGTH,
    clean_slot_values,
    sanitize_richtext,
    validate_slot_schema,
)

SLOTS = [
    {"name": "title", "type": "text", "label": "Title", "default": "Hello", "max_length": 20},
    {"name": "body", "type": "richtext", "label": "Body", "default": "<p>Hi</p>"},
    {"name": "cta", "type": "url", "label": "Link", "default": "https://acme.com/x",
     "allowed_domains": ["acme.com"]},
    {"name": "hero", "type": "image", "label": "Hero", "default": "https://cdn.acme.com/a.png"},
    {"name": "tone", "type": "choice", "label": "Tone", "choices": ["warm", "formal"],
     "default": "warm"},
    {"name": "sign", "type": "text", "label": "Sign-off", "default": "", "required": True},
]


def schema() -> list[dict]:
    normalized, problems = validate_slot_schema(SLOTS)
    assert problems == {}
    return normalized


def test_valid_schema_is_normalized():
    normalized = schema()
    assert [s["name"] for s in normalized] == ["title", "body", "cta", "hero", "tone", "sign"]
    assert normalized[0]["required"] is False and normalized[5]["required"] is True
    assert normalized[2]["allowed_domains"] == ["acme.com"]


@pytest.mark.parametrize(("slot", "key"), [
    ({"name": "Bad Name", "type": "text", "label": "x", "default": ""}, "slots[0].name"),
    ({"name": "x", "type": "video", "label": "x", "default": ""}, "slots.x.type"),
    ({"name": "x", "type": "text", "label": "x", "default": "toolong", "max_length": 3},
     "slots.x.default"),
    ({"name": "x", "type": "choice", "label": "x", "default": "a"}, "slots.x.choices"),
    ({"name": "x", "type": "choice", "label": "x", "choices": ["a"], "default": "b"},
     "slots.x.default"),
    ({"name": "x", "type": "url", "label": "x", "default": "javascript:alert(1)"},
     "slots.x.default"),
    ({"name": "x", "type": "url", "label": "x", "default": "https://evil.com/",
      "allowed_domains": ["acme.com"]}, "slots.x.default"),
    ({"name": "x", "type": "image", "label": "x", "default": "ftp://acme.com/a.png"},
     "slots.x.default"),
    ({"name": "x", "type": "text", "label": "x", "default": "", "max_length": 0},
     "slots.x.max_length"),
])
def test_schema_problems_are_keyed_by_slot(slot, key):
    _normalized, problems = validate_slot_schema([slot])
    assert key in problems, problems


def test_duplicate_names_are_a_problem():
    slot = {"name": "x", "type": "text", "label": "x", "default": ""}
    _normalized, problems = validate_slot_schema([slot, dict(slot)])
    assert "duplicate" in problems["slots[1].name"]


def test_missing_values_take_defaults_and_richtext_is_sanitized():
    cleaned = clean_slot_values(schema(), {"sign": "Jane"})
    assert cleaned["title"] == "Hello" and cleaned["tone"] == "warm" and cleaned["sign"] == "Jane"
    assert cleaned["body"] == "<p>Hi</p>"


def test_every_failing_slot_is_reported_at_once():
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {
            "title": "x" * 21,
            "cta": "https://evil.com/",
            "hero": "javascript:alert(1)",
            "tone": "angry",
            "sign": "   ",
            "nope": "y",
            "body": 5,
        })
    fields = err.value.fields
    assert set(fields) == {"title", "cta", "hero", "tone", "sign", "nope", "body"}
    assert err.value.status == 422 and err.value.code == "invalid_slots"


def test_subdomains_of_allowed_domains_pass_and_lookalikes_fail():
    cleaned = clean_slot_values(schema(), {"cta": "https://shop.acme.com/a?b=1", "sign": "J"})
    assert cleaned["cta"] == "https://shop.acme.com/a?b=1"
    for bad in ("https://evilacme.com/", "https://acme.com.evil.net/", "https://u:p@acme.com/"):
        with pytest.raises(SlotError) as err:
            clean_slot_values(schema(), {"cta": bad, "sign": "J"})
        assert "cta" in err.value.fields


def test_line_breaks_allowed_in_text_not_in_single_line_types():
    cleaned = clean_slot_values(schema(), {"title": "a\r\nb", "sign": "J"})
    assert cleaned["title"] == "a\r\nb"
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {"cta": "https://acme.com/\r\nX: y", "tone": "warm\n",
                                     "sign": "J"})
    assert set(err.value.fields) == {"cta", "tone"}


def test_hard_cap_applies_without_max_length():
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {"sign": "x" * (HARD_MAX_LENGTH + 1)})
    assert "at most" in err.value.fields["sign"]


def test_richtext_is_reduced_to_the_allow_list():
    value = ('<p onclick="steal()">Hi <script>alert(1)</script><a href="javascript:x()">j</a>'
             '<a href="https://acme.com/">ok</a><img src=x onerror=alert(1)><iframe></iframe>'
             '<strong style="color:red">b</strong></p>')
    cleaned = clean_slot_values(schema(), {"body": value, "sign": "J"})["body"]
    assert "<script" not in cleaned and "alert(1)" not in cleaned
    assert "onclick" not in cleaned and "onerror" not in cleaned and "<img" not in cleaned
    assert "javascript:" not in cleaned and "style=" not in cleaned and "<iframe" not in cleaned
    assert '<a href="https://acme.com/" rel="noopener noreferrer">ok</a>' in cleaned
    assert "<strong>b</strong>" in cleaned


def test_richtext_links_obey_allowed_domains():
    slots, problems = validate_slot_schema([
        {"name": "body", "type": "richtext", "label": "Body", "default": "<p>Hi</p>",
         "allowed_domains": ["brand.example"]}])
    assert problems == {}
    ok = clean_slot_values(slots, {
        "body": '<p>See <a href="https://www.brand.example/a?x=1&amp;y=2">this</a> or '
                '<a href="mailto:me@else.example">mail me</a></p>'})
    assert "www.brand.example" in ok["body"]
    with pytest.raises(SlotError) as err:
        clean_slot_values(slots, {"body": '<p><a href="https://evil.example/">x</a></p>'})
    assert "brand.example" in err.value.fields["body"]


RELATIVE_HREFS = ["//evil.example/login", " //evil.example", "/account", "login.html", "#top",
                  "?next=1", "\\\\evil.example", "/\t/evil.example", "https:evil.example",
                  "http:/evil.example"]


@pytest.mark.parametrize("href", RELATIVE_HREFS)
def test_richtext_relative_and_protocol_relative_links_are_refused(href):
    # A relative href resolves against whatever page shows the mail (a webmail's own site),
    # a protocol-relative one to any host: neither is a link the brand can vouch for.
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {"body": f'<p><a href="{href}">x</a></p>', "sign": "J"})
    assert set(err.value.fields) == {"body"}
    assert err.value.fields["body"].startswith(
        "links must be complete web addresses starting with https:// or http://")


def test_richtext_protocol_relative_link_to_an_allowed_domain_becomes_https():
    slots, _problems = validate_slot_schema([
        {"name": "body", "type": "richtext", "label": "Body", "default": "",
         "allowed_domains": ["brand.example"]}])
    cleaned = clean_slot_values(slots, {"body": '<p><a href="//www.brand.example/a">x</a></p>'})
    assert cleaned["body"] == ('<p><a href="https://www.brand.example/a" '
                               'rel="noopener noreferrer">x</a></p>')
    for bad in ("//evil.example/", "//brand.example.evil.net/", "/relative"):
        with pytest.raises(SlotError):
            clean_slot_values(slots, {"body": f'<p><a href="{bad}">x</a></p>'})


def test_richtext_defaults_follow_the_same_rule():
    _slots, problems = validate_slot_schema([
        {"name": "body", "type": "richtext", "label": "Body",
         "default": '<p><a href="//evil.example">x</a></p>'}])
    assert problems["slots.body.default"].startswith("default links must be complete web")


@pytest.mark.parametrize("href", RELATIVE_HREFS)
def test_a_stored_relative_link_is_dropped_when_rendered(href):
    # A value saved before this rule keeps its text, loses the link.
    assert sanitize_richtext(f'<p><a href="{href}">x</a></p>') == (
        '<p><a rel="noopener noreferrer">x</a></p>')


def test_a_value_of_exactly_the_limit_passes_and_one_more_fails():
    slots = schema()
    assert clean_slot_values(slots, {"title": "x" * 20, "sign": "J"})["title"] == "x" * 20
    with pytest.raises(SlotError) as err:
        clean_slot_values(slots, {"title": "x" * 21, "sign": "J"})
    assert err.value.fields == {"title": "must be at most 20 characters"}


@pytest.mark.parametrize("brk", ["\r", "\n"])
def test_a_lone_cr_or_lf_breaks_a_single_line_slot(brk):
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {"tone": f"warm{brk}", "sign": "J"})
    assert err.value.fields == {"tone": "must be a single line"}
    with pytest.raises(SlotError) as err:
        clean_slot_values(schema(), {"cta": f"https://acme.com/{brk}x", "sign": "J"})
    assert err.value.fields == {"cta": "must be a single line"}


def test_schema_limits_are_exact():
    many = [{"name": f"s{i}", "type": "text"} for i in range(50)]
    assert validate_slot_schema(many)[1] == {}
    assert validate_slot_schema([*many, {"name": "s50", "type": "text"}])[1]["slots"] == (
        "at most 50 slots")
    label = {"name": "a", "type": "text", "label": "l" * 200}
    assert validate_slot_schema([label])[1] == {}
    assert validate_slot_schema([{**label, "label": "l" * 201}])[1] == {
        "slots.a.label": "must be a string of at most 200 characters"}
    for ok in (1, HARD_MAX_LENGTH):
        normalized, problems = validate_slot_schema([{"name": "a", "max_length": ok}])
        assert problems == {} and normalized[0]["max_length"] == ok
    for bad in (0, HARD_MAX_LENGTH + 1, True, "5"):
        assert validate_slot_schema([{"name": "a", "max_length": bad}])[1] == {
            "slots.a.max_length": f"must be an integer from 1 to {HARD_MAX_LENGTH}"}


def test_an_invalid_required_flag_is_reported_and_read_as_false():
    normalized, problems = validate_slot_schema([{"name": "a", "required": "yes"}])
    assert problems == {"slots.a.required": "must be true or false"}
    assert normalized[0]["required"] is False


def test_richtext_comments_are_stripped():
    cleaned = clean_slot_values(schema(), {"body": "<p>a<!-- hidden -->b</p>", "sign": "J"})
    assert cleaned["body"] == "<p>ab</p>"
