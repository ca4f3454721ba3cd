"""The expression allow-list and the render bounds of personalization/sandbox.py, message by
message (these are the tests `make mutation` runs against the module)."""

from __future__ import annotations

import pytest
from jinja2 import nodes
from jinja2.sandbox import SecurityError

from core.errors import RenderError
from personalization import sandbox
from personalization.sandbox import (
    ALLOWED_FILTERS,
    MAX_EXPR_DEPTH,
    PARSE_ENV,
    analyze,
    bounded,
    charge,
    is_unsubscribe_expr,
    make_env,
    tree_depth,
    walk,
)


def problems(source: str) -> list[str]:
    return analyze(source).problems


@pytest.mark.parametrize(("source", "message"), [
    ("{% if 1 %}x{% endif %}", "statements ({% ... %}) are not allowed; only {{ ... }}"),
    ("{# note #}", "comments ({# ... #}) are not allowed"),
    ("{% raw %}x{% endraw %}", "{% raw %} blocks are not allowed"),
    ("{{ slots.a(1) }}", "{{ slots.a(1) }}: function and method calls are not allowed"),
    ("{{ slots.a|attr('x') }}",
     "{{ slots.a|attr('x') }}: filter 'attr' is not allowed (allowed: "
     + ", ".join(ALLOWED_FILTERS) + ")"),
    ("{{ slots.a|upper(*slots.b) }}", "{{ slots.a|upper(*slots.b) }}: *args and **kwargs are "
                                      "not allowed"),
    ("{{ slots.a|upper(**slots.b) }}", "{{ slots.a|upper(**slots.b) }}: *args and **kwargs "
                                       "are not allowed"),
    ("{{ slots._x }}", "{{ slots._x }}: private attribute '_x' is not allowed"),
    ("{{ slots[slots.a] }}", "{{ slots[slots.a] }}: only constant keys may be used with [...]"),
    ("{{ config }}", "{{ config }}: 'config' is not available (use one of: slots, contact, "
                     "partner, sender, brand, unsubscribe_url)"),
    ("{{ unsubscribe_url.x }}", "{{ unsubscribe_url.x }}: unsubscribe_url has no attributes"),
    ("{{ slots }}", "{{ slots }}: slots are used as slots.NAME"),
    ("{{ slots.a.b }}", "{{ slots.a.b }}: slots are used as slots.NAME"),
    ("{{ contact }}", "{{ contact }}: contact must be used with a field, e.g. contact.email"),
    ("{{ contact.phone }}", "{{ contact.phone }}: 'contact.phone' is not a merge field (known: "
                            "email, first_name, last_name, attributes)"),
    ("{{ contact.attributes }}", "{{ contact.attributes }}: contact attributes are used as "
                                 "contact.attributes.KEY"),
    ("{{ contact.attributes.a.b }}", "{{ contact.attributes.a.b }}: contact attributes are "
                                     "used as contact.attributes.KEY"),
    ("{{ partner.name.x }}", "{{ partner.name.x }}: 'partner.name.x': merge fields have no "
                             "attributes"),
    ("{{ 'a'.upper }}", "{{ 'a'.upper }}: attributes may only be read from merge fields and "
                        "slots"),
    ("{{ slots.a < 'b' }}", "{{ slots.a < 'b' }}: comparison 'lt' is not allowed"),
    ("{{ slots.a + 'b' }}", "{{ slots.a + 'b' }}: Add expressions are not allowed"),
    ("{{ [1] }}", "{{ [1] }}: List expressions are not allowed"),
    ("{{ slots. }}", "{{ slots. }}: expected name or number"),
])
def test_each_refusal_says_what_is_wrong(source, message):
    assert problems(source) == [message]


def test_a_lexer_error_names_its_line():
    assert problems("a\n{{ 'open }}") == ["line 2: unexpected char \"'\" at 5"]


def test_allowed_expressions_pass_and_report_their_slots():
    source = ("Hi {{ contact.first_name|default('you')|title }} {{ slots.a }} "
              "{{ slots.b if slots.c == 'x' and not slots.d else slots.e ~ '!' }} "
              "{{ contact.attributes.city }} {{ contact['email'] }} {{ unsubscribe_url }} "
              "{{ slots.f in 'abc' or slots.g != 'y' or slots.h not in 'z' }} {{ 1.5 }} "
              "{{ slots.i|truncate(10, end='') }} {{ none }}")
    analysis = analyze(source)
    assert analysis.problems == []
    assert analysis.slot_refs == set("abcdefghi")
    exprs = [text for kind, text in analysis.pieces if kind == "expr"]
    assert len(exprs) == 10
    assert analysis.pieces[0] == ("data", "Hi ")
    assert analysis.expr_slots[1] == set()
    assert analysis.expr_slots[3] == {"a"}
    assert analysis.expr_slots[5] == set("bcde")


def test_data_pieces_are_joined():
    assert analyze("a\nb {{ slots.x }} c").pieces == [("data", "a\nb "), ("expr", "slots.x"),
                                                      ("data", " c")]


def test_constant_types_are_limited():
    assert problems("{{ slots.a|default(('x',)) }}") == [
        "{{ slots.a|default(('x',)) }}: Tuple expressions are not allowed"]


def test_every_problem_of_an_expression_is_listed():
    assert problems("{{ slots._a ~ config }}") == [
        "{{ slots._a ~ config }}: private attribute '_a' is not allowed",
        "{{ slots._a ~ config }}: 'config' is not available (use one of: slots, contact, "
        "partner, sender, brand, unsubscribe_url)"]


def test_a_filter_without_problems_checks_its_arguments():
    assert problems("{{ slots.a|replace(config, slots._b) }}") == [
        "{{ slots.a|replace(config, slots._b) }}: 'config' is not available (use one of: "
        "slots, contact, partner, sender, brand, unsubscribe_url)",
        "{{ slots.a|replace(config, slots._b) }}: private attribute '_b' is not allowed"]
    assert problems("{{ slots.a|truncate(end=config) }}")[0].endswith("'config' is not "
                                                                     "available (use one of: "
                                                                     "slots, contact, partner,"
                                                                     " sender, brand, "
                                                                     "unsubscribe_url)")


def test_depth_and_length_limits_are_exact():
    deep = f"expression too deeply nested (at most {MAX_EXPR_DEPTH} levels of parentheses, " \
           "filters, not, and/or or if/else)"
    ok = "{{ " + "(" * MAX_EXPR_DEPTH + "slots.a" + ")" * MAX_EXPR_DEPTH + " }}"
    assert problems(ok) == []
    over = "{{ " + "(" * (MAX_EXPR_DEPTH + 1) + "slots.a" + ")" * (MAX_EXPR_DEPTH + 1) + " }}"
    assert problems(over)[0].endswith(deep)
    assert problems("{{ " + "not " * MAX_EXPR_DEPTH + "slots.a }}") == []
    assert problems("{{ " + "not " * (MAX_EXPR_DEPTH + 1) + "slots.a }}")[0].endswith(deep)
    mixed = "{{ (slots.a or slots.b)" + "|upper" * (MAX_EXPR_DEPTH - 2) + " }}"
    assert problems(mixed) == []
    assert problems(mixed.replace("|upper", "|upper|lower", 1))[0].endswith(deep)
    both = "{{ (" * 1 + "slots.a if slots.b else slots.c)" + "|upper" * (MAX_EXPR_DEPTH - 1)
    assert problems(both + " }}")[0].endswith(deep)
    # brackets close: depth is how deep, not how many
    flat = "{{ " + " ~ ".join(["(slots.a)"] * 30) + " }}"
    assert problems(flat) == []
    tokens = " ~ ".join(["slots.a"] * 50)  # 3 tokens each + 49 operators = 199
    assert problems("{{ " + tokens + " }}") == []
    assert problems("{{ 1 ~ " + tokens[len("slots.a ~ "):] + " ~ 1 }}") == []  # 199 again
    too_long = "{{ " + tokens + " ~ 1 }}"  # 201
    assert problems(too_long)[0].endswith("expression too long (at most 200 names, values and "
                                          "operators)")


def test_tree_depth_and_walk():
    tree = PARSE_ENV.parse("{{ slots.a|upper }}")
    assert tree_depth(tree) == 5  # Template, Output, Filter, Getattr, Name
    assert tree_depth(nodes.Const(1)) == 1
    assert [n.name for n in walk(tree, nodes.Name)] == ["slots"]
    assert walk(tree, nodes.Template) == [tree]
    assert len(walk(tree)) == 5


def test_unsubscribe_expression_is_recognized_exactly():
    assert is_unsubscribe_expr(" unsubscribe_url ")
    assert not is_unsubscribe_expr("unsubscribe_url|e")


def test_environments_offer_only_the_allowed_filters_and_nothing_else():
    env = make_env(autoescape=False)
    assert sorted(env.filters) == sorted(ALLOWED_FILTERS)
    assert env.tests == {} and env.globals == {}
    assert not make_env(autoescape=False).autoescape and make_env(autoescape=True).autoescape
    assert env.from_string("{{ x|upper }}").render(x="a") == "A"
    with pytest.raises(SecurityError):
        env.from_string("{{ x.__class__ }}").render(x="a")
    seen = []
    env = make_env(autoescape=False, finalize=lambda v: seen.append(v) or v)
    assert env.from_string("{{ x }}\n").render(x="a") == "a\n"  # keeps the trailing newline
    assert seen == ["a"]


# --------------------------------------------------------------------------- render bounds

def test_charge_outside_a_render_only_caps_one_value(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_OUTPUT_CHARS", 10)
    charge(10)  # exactly the bound is fine
    charge(10)  # and nothing accumulates outside bounded()
    with pytest.raises(RenderError) as err:
        charge(11)
    assert err.value.message == "the message would be larger than 10 characters"


def test_work_is_counted_within_one_bounded_block(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_WORK_CHARS", 10)
    with bounded():
        charge(4)
        with bounded():  # nested: the same budget
            charge(6)
        with pytest.raises(RenderError) as err:
            charge(1)
    assert err.value.message == ("the template produces more than 10 characters while "
                                 "rendering (filters such as replace multiply text)")
    with bounded():  # a new block starts afresh
        charge(10)


def test_time_is_bounded(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.5)
    clock = iter([100.0, 100.5, 100.6])
    monkeypatch.setattr(sandbox.time, "monotonic", lambda: next(clock))
    with bounded():  # deadline 100.5
        charge(1)  # at 100.5: still in time
        with pytest.raises(RenderError) as err:
            charge(1)  # at 100.6
    assert err.value.message == "rendering took longer than 0.5 seconds"


@pytest.mark.parametrize("autoescape", [False, True])
def test_replace_is_charged_before_it_runs_exactly(monkeypatch, autoescape):
    monkeypatch.setattr(sandbox, "MAX_OUTPUT_CHARS", 12)
    env = make_env(autoescape=autoescape)
    render = env.from_string("{{ s|replace(old, new, n) }}").render
    assert render(s="abc", old="", new="x", n=None) == "xaxbxcx"
    # "" is found len+1 times: 3 + 4 * 2 = 11 fits; 3 + 4 * 3 = 15 does not
    assert render(s="abc", old="", new="yy", n=None) == "yyayybyycyy"
    with pytest.raises(RenderError):
        render(s="abc", old="", new="yyy", n=None)
    # the count limits the insertions: 3 + 2 * 3 = 9
    assert render(s="abc", old="", new="yyy", n=2) == "yyyayyybc"
    assert render(s="abc", old="", new="yyy", n=3) == "yyyayyybyyyc"  # 3 + 3 * 3 = 12
    # a count of 0 replaces nothing, so it costs nothing extra
    assert render(s="abc", old="", new="y" * 100, n=0) == "abc"
    # a negative count means every occurrence
    with pytest.raises(RenderError):
        render(s="abc", old="", new="yyy", n=-1)
    # shrinking never counts negative
    assert render(s="aaaaaaaaaaaa", old="aa", new="b", n=None) == "bbbbbb"
    assert render(s="abab", old="b", new="cccc", n=None) == "accccacccc"  # 4 + 2 * 3 = 10
    with pytest.raises(RenderError):
        render(s="ababab", old="b", new="cccc", n=None)  # 6 + 3 * 3 = 15


def test_replace_counts_escaped_text_under_autoescape(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_OUTPUT_CHARS", 20)
    render = make_env(autoescape=True).from_string("{{ s|replace(old, new) }}").render
    assert render(s="<", old="<", new="x") == "x"  # "&lt;" contains "&lt;" once
    # "&lt;&lt;" (8) with each "&lt;" (4) -> "&amp;&amp;" (10): 8 + 2 * 6 = 20 fits
    assert render(s="<<", old="<", new="&&") == "&amp;&amp;&amp;&amp;"
    with pytest.raises(RenderError):
        render(s="<<<", old="<", new="&&")  # 12 + 3 * 6 = 30


def test_round_precision_is_bounded_both_ways():
    env = make_env(autoescape=False)
    assert env.from_string("{{ 1.25|round(100, 'floor') }}").render() == "1.25"
    assert env.from_string("{{ 1.5|round(-100) }}").render() == "0.0"
    assert env.from_string("{{ 2.5|round }}").render() == "2.0"
    assert env.from_string("{{ 1.21|round(1, 'ceil') }}").render() == "1.3"
    for precision in (101, -101):
        with pytest.raises(RenderError) as err:
            env.from_string("{{ 1.5|round(p) }}").render(p=precision)
        assert err.value.message == "round: precision must be between -100 and 100"


def test_every_filter_result_is_charged(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_WORK_CHARS", 5)
    env = make_env(autoescape=False)
    with bounded():
        assert env.from_string("{{ s|upper }}").render(s="abcde") == "ABCDE"
        with pytest.raises(RenderError):
            env.from_string("{{ s|lower }}").render(s="a")
    with bounded():
        assert env.from_string("{{ s|length }}").render(s="abcdef") == "6"  # not text: free
