"""The brand-lock proof (personalization/lock.py), case by case: what counts as the locked
text, where a change is reported, and which outputs may carry markup (these are the tests
`make mutation` runs against the module)."""

from __future__ import annotations

import itertools

import pytest

from personalization import lock
from personalization.lock import MAX_REPORTED, check_escaped_outputs, check_locked_regions

_ids = itertools.count(1)


class Version:
    def __init__(self, html: str, slots: list[dict] | None = None, vid: int | None = -1):
        self.id = next(_ids) if vid == -1 else vid
        self.compiled_html = html
        self.slots = slots or []


V = Version("<p>Hi {{ contact.first_name }}!</p><div>{{ slots.body }}</div>{{ open_pixel }}"
            "<i>end</i>", [{"name": "body", "type": "richtext"}])


def test_an_intact_message_has_no_problems():
    assert check_locked_regions(V, "<p>Hi Al!</p><div><b>x</b></div><img><i>end</i>") == []
    assert check_escaped_outputs(V, "<p>Hi Al!</p><div><b>x</b></div><img><i>end</i>") == []
    # empty outputs are fine too
    assert check_locked_regions(V, "<p>Hi !</p><div></div><i>end</i>") == []


def test_a_changed_beginning_is_reported():
    assert check_locked_regions(V, "<p>Yo Al!</p><div></div><i>end</i>") == [
        "the beginning of the message was changed (expected '<p>Hi', found '<p>Yo')"]


def test_a_changed_end_is_reported():
    assert check_locked_regions(V, "<p>Hi Al!</p><div></div><i>END</i>") == [
        "the end of the message was changed (expected '<i>end</i>')"]


def test_the_end_may_not_overlap_what_came_before():
    version = Version("ab{{ slots.x }}b")
    assert check_locked_regions(version, "ab") == [
        "the end of the message was changed (expected 'b')"]
    assert check_locked_regions(version, "abb") == []


def test_a_changed_middle_segment_names_the_expression_before_it():
    assert check_locked_regions(V, "<p>Hi Al?</p><div></div><i>end</i>") == [
        "locked segment 1 after {{ contact.first_name }} was changed or removed "
        "(expected '!</p><div>' near 'Al?</p><div></div><i>end</i>')"]


def test_reports_stop_at_the_maximum():
    html = "".join(f"<s{i}>{{{{ slots.a{i} }}}}" for i in range(10)) + "<e>"
    version = Version(html)
    found = check_locked_regions(version, "<s0>x")
    assert len(found) == MAX_REPORTED
    assert found[0].startswith("locked segment 1 after {{ slots.a0 }}")


def test_a_template_without_expressions_must_match_exactly():
    version = Version("<p>fixed</p>")
    assert check_locked_regions(version, "<p>fixed</p>") == []
    assert check_locked_regions(version, "<p>fixed</p>!") == [
        "the message differs from the template"]


def test_constant_strings_are_locked_text_escaped():
    version = Version("a{{ '<b>' }}c{{ slots.x }}")
    assert check_locked_regions(version, "a&lt;b&gt;cX") == []
    assert check_locked_regions(version, "a<b>cX") != []


def test_statements_are_not_a_published_template():
    with pytest.raises(ValueError, match="only literal text and expressions"):
        check_locked_regions(Version("{% if 1 %}x{% endif %}"), "x")


def test_markup_is_allowed_only_from_richtext_slots_and_the_pixel():
    version = Version("<p>{{ slots.title }}</p><div>{{ slots.body|upper }}</div>"
                      "{{ open_pixel }}<q>{{ contact.first_name }}</q>",
                      [{"name": "title", "type": "text"}, {"name": "body", "type": "richtext"}])
    assert check_escaped_outputs(version, "<p>T</p><div><B>X</B></div><img><q>A</q>") == []
    assert check_escaped_outputs(version, "<p><b>T</b></p><div></div><q><i>A</i></q>") == [
        "{{ slots.title }} emitted unescaped markup: '<b>T</b>'",
        "{{ contact.first_name }} emitted unescaped markup: '<i>A</i>'"]
    # a changed locked text is reported instead
    assert check_escaped_outputs(version, "<P>T</p><div></div><q>A</q>")[0].startswith(
        "the beginning of the message was changed")


def test_labels_name_what_an_expression_prints():
    version = Version("<a>{{ unsubscribe_url }}</a><b>{{ 'x' ~ slots.t }}</b><c>{{ 1 }}</c>")
    assert check_escaped_outputs(version, "<a><i></a><b><i></b><c><i></c>") == [
        "{{ unsubscribe_url }} emitted unescaped markup: '<i>'",
        "{{ slots.t }} emitted unescaped markup: '<i>'",
        "{{ ... }} emitted unescaped markup: '<i>'"]


def test_long_excerpts_are_shortened_and_whitespace_folded():
    version = Version("<p>" + "x" * 100 + "{{ slots.a }}")
    found = check_locked_regions(version, "<p>\n  " + "y" * 100)
    assert found == ["the beginning of the message was changed (expected '<p>" + "x" * 57
                     + "…', found '<p> " + "y" * 56 + "…')"]


def test_plans_are_cached_per_version_and_rebuilt_when_the_source_changes(monkeypatch):
    monkeypatch.setattr(lock, "_CACHE_MAX", 2)
    lock._cache.clear()
    version = Version("a{{ slots.x }}b")
    assert check_locked_regions(version, "aXb") == []
    assert version.id in lock._cache
    version.compiled_html = "c{{ slots.x }}d"
    assert check_locked_regions(version, "aXb") != []  # not the stale plan
    assert check_locked_regions(version, "cXd") == []
    others = [Version("e{{ slots.x }}f") for _ in range(2)]
    for other in others:
        check_locked_regions(other, "eXf")
    assert len(lock._cache) == 2 and version.id not in lock._cache
    unsaved = Version("g{{ slots.x }}h", vid=None)
    assert check_locked_regions(unsaved, "gXh") == []
    assert None not in lock._cache
