"""The compile-once pipeline and every way a template is refused (422 problems)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import TemplateError
from personalization.compile import check_template, compile_template, wrap_html

EMAILS = Path(__file__).resolve().parent.parent / "templates" / "emails"
SLOTS = [
    {"name": "headline", "type": "text", "label": "Headline", "default": "Hello"},
    {"name": "cta_url", "type": "url", "label": "Link", "default": "https://acme.com/go"},
]


def mjml(body: str, head: str = "") -> str:
    return (f"<mjml><mj-head>{head}</mj-head><mj-body><mj-section><mj-column>{body}"
            "</mj-column></mj-section></mj-body></mjml>")


GOOD = mjml(
    '<mj-text><h1>{{ slots.headline }}</h1>Hi {{ contact.first_name }},</mj-text>'
    '<mj-button href="{{ slots.cta_url }}">Go</mj-button>'
    '<mj-text><a href="https://acme.com/about">About</a> '
    '<a href="mailto:{{ sender.reply_to }}">Write</a> '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>'
)


def problems_of(body: str, slots: list[dict] | None = None, subject: str = "Hi") -> dict:
    return check_template(body, subject, "", SLOTS if slots is None else slots)


def test_good_template_compiles_with_tracked_links_pixel_and_text():
    compiled = compile_template(GOOD, "Hi {{ contact.first_name }}", "Pre {{ partner.name }}",
                                SLOTS)
    assert compiled.links == ["{{ slots.cta_url }}", "https://acme.com/about"]
    assert 'href="{{ link(0) }}"' in compiled.html and 'href="{{ link(1) }}"' in compiled.html
    assert 'href="{{ unsubscribe_url }}"' in compiled.html
    assert 'href="mailto:{{ sender.reply_to }}"' in compiled.html
    assert "{{ open_pixel }}</body>" in compiled.html
    assert "Pre {{ partner.name }}" in compiled.html  # the preheader
    assert "Go [{{ link(0) }}]" in compiled.text
    assert "About [{{ link(1) }}]" in compiled.text
    assert "Unsubscribe [{{ unsubscribe_url }}]" in compiled.text
    assert "open_pixel" not in compiled.text and "Pre " not in compiled.text


def test_premailer_does_not_mangle_expressions_in_hrefs():
    body = mjml(
        '<mj-text><a href="{{ slots.cta_url }}?utm=x&amp;who={{ contact.email|urlencode }}">'
        'Go</a> <a href="{{ unsubscribe_url }}">u</a></mj-text>',
        '<mj-style inline="inline">a { color: #c00; }</mj-style>',
    )
    compiled = compile_template(body, "Hi", "", SLOTS[1:])
    assert compiled.links == ["{{ slots.cta_url }}?utm=x&who={{ contact.email|urlencode }}"]
    assert "%20" not in compiled.html and "{{%" not in compiled.html
    assert 'style="color: #c00' in compiled.html or "color:#c00" in compiled.html


def test_mjml_errors_come_back_as_problems_with_the_message():
    problems = problems_of(mjml("<mj-bogus>x</mj-bogus><mj-text>{{ slots.headline }} "
                                "{{ slots.cta_url }}</mj-text>"))
    assert "mj-bogus" in problems["mjml"]
    problems = problems_of("<p>not mjml {{ slots.headline }} {{ slots.cta_url }}</p>")
    assert "<mjml>" in problems["mjml"]


def test_unsupported_mjml_construct_is_a_problem_not_an_exception():
    head = '<mj-font name="Roboto" href="https://fonts.googleapis.com/css?family=Roboto" />'
    source = mjml('<mj-text font-family="Roboto">{{ slots.headline }} {{ slots.cta_url }}'
                  "</mj-text>", head)
    problems = problems_of(source)
    assert "MJML could not be compiled" in problems["mjml"]
    assert "mj-font" in problems["mjml"]
    with pytest.raises(TemplateError) as err:
        compile_template(source, "Hi", "", SLOTS)
    assert err.value.status == 422 and err.value.code == "invalid_template"


def test_undeclared_and_unused_slots_are_problems():
    problems = problems_of(mjml("<mj-text>{{ slots.headline }} {{ slots.ghost }}</mj-text>"))
    assert "not declared" in problems["slots.ghost"]
    assert "not used" in problems["slots.cta_url"]


def test_bad_default_is_a_problem():
    slots = [{"name": "headline", "type": "text", "label": "H", "default": "x" * 30,
              "max_length": 10}]
    problems = problems_of(mjml("<mj-text>{{ slots.headline }}</mj-text>"), slots)
    assert "slots.headline.default" in problems


@pytest.mark.parametrize("expr", [
    "config", "request.environ", "self", "lipsum", "range(10)", "contact.first_name.upper()",
    "contact.password", "partner", "slots", "7 * 7", "'a' ~ contact.x.y",
    "contact.first_name|format('x')", "[1, 2]", "contact.attributes.city.zip",
    "brand.name|attr('upper')", "slots['headline'][0:1]",
])
def test_disallowed_expressions_are_problems(expr):
    problems = problems_of(mjml(f"<mj-text>{{{{ {expr} }}}} {{{{ slots.headline }}}} "
                                "{{ slots.cta_url }}</mj-text>"))
    assert "mjml" in problems, expr


@pytest.mark.parametrize("escape", [
    "''.__class__.__mro__",
    "contact.first_name|attr('format')",
    "cycler.__init__.__globals__",
    "contact['__class__']",
    "slots.headline.__class__.__init__.__globals__",
])
def test_sandbox_escapes_are_refused(escape):
    problems = problems_of(mjml(f"<mj-text>{{{{ {escape} }}}} {{{{ slots.headline }}}} "
                                "{{ slots.cta_url }}</mj-text>"))
    assert "mjml" in problems


@pytest.mark.parametrize("statement", [
    "{% if contact.first_name %}x{% endif %}",
    "{% for x in slots %}{{ x }}{% endfor %}",
    "{% set x = 1 %}", "{% include 'a' %}", "{% import 'a' as b %}", "{% extends 'a' %}",
    "{% macro m() %}{% endmacro %}", "{# hidden #}", "{% raw %}{{ x }}{% endraw %}",
])
def test_statements_are_refused(statement):
    problems = problems_of(mjml(f"<mj-text>{statement} {{{{ slots.headline }}}} "
                                "{{ slots.cta_url }}</mj-text>"))
    assert "mjml" in problems


@pytest.mark.parametrize("href", [
    "javascript:alert(1)", "JavaScript:alert(1)", "java&#09;script:alert(1)",
    "&#106;avascript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=", "vbscript:msgbox(1)",
])
def test_dangerous_links_are_problems(href):
    source = mjml(f'<mj-text><a href="{href}">x</a> {{{{ slots.headline }}}}'
                  '<a href="{{ slots.cta_url }}">y</a></mj-text>')
    problems = problems_of(source)
    assert "links" in problems, problems
    assert "not allowed" in problems["links"]


def test_relative_links_are_problems():
    problems = problems_of(mjml('<mj-text><a href="/about">x</a> {{ slots.headline }}'
                                '<a href="{{ slots.cta_url }}">y</a></mj-text>'))
    assert "http(s)" in problems["links"]


def test_subject_problems():
    problems = problems_of(GOOD, subject="")
    assert problems["subject"] == "is required"
    problems = problems_of(GOOD, subject="Hi {{ contact.first_name.__class__ }}")
    assert "private" in problems["subject"]
    richtext = [*SLOTS, {"name": "body", "type": "richtext", "label": "B", "default": ""}]
    problems = check_template(GOOD.replace("Hi {{", "{{ slots.body }} Hi {{"),
                              "{{ slots.body }}", "", richtext)
    assert "richtext" in problems["subject"]


def test_every_problem_is_listed_at_once():
    source = mjml('<mj-text>{{ slots.ghost }} {{ config }}<a href="javascript:x">j</a>'
                  "</mj-text>")
    problems = check_template(source, "", "", [*SLOTS, {"name": "Bad"}])
    assert {"mjml", "subject", "slots.ghost", "slots.headline", "slots[2].name"} <= set(problems)


def test_richtext_inside_an_attribute_is_refused():
    slots = [{"name": "body", "type": "richtext", "label": "B", "default": "<p>x</p>"}]
    problems = check_template(mjml('<mj-image src="https://a.com/x.png" alt="{{ slots.body }}" />'
                                   ), "Hi", "", slots)
    assert "text content" in problems["mjml"]


def test_compiled_lines_fit_the_smtp_limit():
    words = " ".join(f"word{i}" for i in range(3000))
    style = ";".join(f"--v{i}:{i}px" for i in range(200))
    source = mjml(f'<mj-text css-class="c">{words} {{{{ slots.headline }}}}</mj-text>'
                  f'<mj-button href="{{{{ slots.cta_url }}}}">Go</mj-button>',
                  f'<mj-style inline="inline">.c {{ color: red; {style} }}</mj-style>')
    compiled = compile_template(source, "Hi", "", SLOTS)
    lines = compiled.html.split("\n")
    assert max(len(line.encode()) for line in lines) <= 998
    assert max(len(line.encode()) for line in compiled.text.split("\n")) <= 998
    assert words.split()[-1] in compiled.html  # nothing lost


def test_wrapping_only_breaks_between_attributes_and_words():
    line = "<td " + " ".join(f'a{i}="v {i}"' for i in range(200)) + ">" + "w " * 600 + "</td>"
    wrapped, ok = wrap_html(line, 200)
    assert ok
    assert all(len(part) <= 200 for part in wrapped.split("\n"))
    assert wrapped.replace("\n", " ") == line  # only whitespace became newlines
    for i in range(200):
        assert f'a{i}="v {i}"' in wrapped  # never inside an attribute value


@pytest.mark.parametrize("starter", json.loads((EMAILS / "starters.json").read_text()),
                         ids=lambda s: s["key"])
def test_every_starter_compiles(starter):
    source = (EMAILS / starter["file"]).read_text()
    assert check_template(source, starter["subject"], starter["preheader"],
                          starter["slots"]) == {}
    compiled = compile_template(source, starter["subject"], starter["preheader"],
                                starter["slots"])
    assert 2 <= len(starter["slots"]) <= 5
    assert 'href="{{ unsubscribe_url }}"' in compiled.html
    assert "{{ brand.name }}" in compiled.html and "{{ partner.name }}" in compiled.html
    assert "{{ contact.first_name" in compiled.html and "sender.name" in compiled.html
    # The signature block reads the partner profile (accounts/profile.py).
    assert "partner.advisor_name" in compiled.html and "{{ partner.disclosures }}" in compiled.html
    assert max(len(line.encode()) for line in compiled.html.split("\n")) <= 998
    assert "@media" in compiled.html  # responsive


def test_mj_include_cannot_read_server_files(tmp_path):
    secret_file = tmp_path / "server-secret.txt"
    secret_file.write_text("server-file-content-7731")
    for tag in (f'<mj-include path="{secret_file}" />', f'<MJ-INCLUDE path="{secret_file}"/>',
                '<mj-include path="/nonexistent/x" />'):
        mjml = ("<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text>"
                f"{tag}</mj-column></mj-section></mj-body></mjml>")
        problems = check_template(mjml, "Hello", "", [])
        assert "mj-include" in problems["mjml"]
        assert "server-file-content-7731" not in str(problems)
        assert "/nonexistent" not in str(problems)
