"""Templates are bounded: in depth when saved, in size and time when rendered, and what cannot
render with a slot's declared type is refused at save (issue 15, item 2).

Today's failures these pin down: `'aaaaaaaaaa'|replace('', 'aaaaaaaaaa')` grows 11x per filter
(7 filters: 214 MB); 3,000 nested parentheses, `not`s or filters raised RecursionError (a 500);
`{{ slots.n|round }}` published and then every send failed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from campaigns.models import Send
from core import clock
from core.db import db
from core.errors import RenderError, TemplateError
from journeys.models import TemplateVersion
from personalization import sandbox
from personalization.compile import compile_template
from personalization.render import check_source, compile_source, render_message
from personalization.sandbox import MAX_EXPR_DEPTH, analyze
from tests.builders import make_user
from tests.test_pipeline_support import T0, configured, drain, launch_campaign, smtp_server

AMPLIFY = "{{ 'aaaaaaaaaa'" + "|replace('', 'aaaaaaaaaa')" * 7 + " }}"
TOO_DEEP = {
    "parentheses": "{{ " + "(" * 3000 + "slots.n" + ")" * 3000 + " }}",
    "nots": "{{ " + "not " * 3000 + "slots.n }}",
    "filters": "{{ slots.n" + "|upper" * 5000 + " }}",
    "ands": "{{ " + "slots.n and " * 100 + "slots.n }}",
}
N = [{"name": "n", "type": "text", "label": "Number", "default": "3"}]
DEEP_MESSAGE = f"expression too deeply nested (at most {MAX_EXPR_DEPTH} levels"


def mjml(text: str) -> str:
    return ("<mjml><mj-body><mj-section><mj-column><mj-text>" + text +
            "</mj-text></mj-column></mj-section></mj-body></mjml>")


class Version:
    """A published version as render_message reads it (no database needed)."""

    _ids = iter(range(10**6, 2 * 10**6))

    def __init__(self, html: str, slots: list[dict], subject: str = "Hi"):
        self.id = next(self._ids)
        self.compiled_html, self.compiled_text = html, "text"
        self.subject, self.links, self.slots = subject, [], slots


def render(version: Version, values: dict | None = None):
    return render_message(version, values or {}, {"first_name": "Al"}, {}, {}, {})


# ----------------------------------------------------------------------- depth, at save

@pytest.mark.parametrize("case", sorted(TOO_DEEP))
def test_deep_expressions_are_refused_with_a_clear_message_not_a_recursion(case):
    analysis = analyze(TOO_DEEP[case])
    assert len(analysis.problems) == 1 and DEEP_MESSAGE in analysis.problems[0], analysis
    problems = check_source(mjml(TOO_DEEP[case]), "Hi", "", N)
    assert DEEP_MESSAGE in problems["mjml"]


def test_depth_limit_is_exact():
    assert analyze("{{ slots.n" + "|upper" * MAX_EXPR_DEPTH + " }}").problems == []
    assert analyze("{{ contact.attributes.city" + "|upper" * MAX_EXPR_DEPTH + " }}"
                   ).problems == []
    over = analyze("{{ slots.n" + "|upper" * (MAX_EXPR_DEPTH + 1) + " }}").problems
    assert len(over) == 1 and DEEP_MESSAGE in over[0]
    nested = "(" * MAX_EXPR_DEPTH + "slots.n" + ")" * MAX_EXPR_DEPTH
    assert analyze("{{ " + nested + " }}").problems == []
    assert DEEP_MESSAGE in analyze("{{ (" + nested + ") }}").problems[0]


def test_long_flat_expressions_are_refused_too():
    long = "{{ " + " ~ ".join(["slots.n"] * 150) + " }}"
    assert "expression too long (at most 200" in analyze(long).problems[0]


@pytest.mark.parametrize("case", sorted(TOO_DEEP))
def test_api_answers_422_for_deep_expressions_and_saves_nothing(app, make_api, case):
    _, token = make_user("brand_marketer")
    api = make_api(token)
    response = api.post("/api/templates", json={"name": "Deep", "subject": "Hi",
                                                "mjml": mjml(TOO_DEEP[case]), "slots": N})
    assert response.status_code == 422, response.json
    assert DEEP_MESSAGE in response.json["error"]["fields"]["mjml"]
    assert api.get("/api/templates").json["total"] == 0


# --------------------------------------------------------------- size and time, rendering

def test_amplification_is_refused_at_save_without_building_it():
    problems = check_source(mjml(AMPLIFY), "Hi", "", [])
    assert "the message would be larger than 4,000,000 characters" in problems["mjml"]
    assert "replace(" in problems["mjml"]  # it names the expression


def test_replace_is_refused_before_it_allocates():
    # One step over the bound: refused by arithmetic, not by running it.
    version = Version("{{ slots.t|replace('', slots.t) }}", [
        {"name": "t", "type": "text", "default": "", "label": "T"}])
    with pytest.raises(RenderError, match="larger than 4,000,000 characters"):
        render(version, {"t": "a" * 2001})  # 2,002 x 2,001 + 2,001 characters
    assert render(version, {"t": "a" * 1998}).html.count("a") == 1999 * 1998 + 1998


def test_a_published_amplifying_template_fails_its_render_with_a_reason():
    version = Version(AMPLIFY, [])
    with pytest.raises(RenderError) as err:
        render(version)
    assert err.value.message == "the message would be larger than 4,000,000 characters"


def test_many_medium_values_exceed_the_work_budget():
    expr = "{{ slots.t|replace('', 'bb') }}"  # 10,000 -> 30,001 characters each
    version = Version(expr * 600, [{"name": "t", "type": "text", "default": "", "label": "T"}])
    with pytest.raises(RenderError, match="more than 16,000,000 characters while rendering"):
        render(version, {"t": "a" * 10_000})


def test_render_time_is_bounded(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", -1.0)  # the deadline is already past
    version = Version("{{ slots.t|upper }}", [{"name": "t", "type": "text", "default": "x",
                                               "label": "T"}])
    with pytest.raises(RenderError, match="rendering took longer than -1 seconds"):
        render(version)


def test_huge_round_precision_is_refused():
    version = Version("{{ slots.t|int|round(1000000000, 'ceil') }}", [
        {"name": "t", "type": "text", "default": "1", "label": "T"}])
    with pytest.raises(RenderError, match="precision must be between -100 and 100"):
        render(version)


# ------------------------------------------------------ what cannot render, refused at save

def test_round_on_a_text_slot_is_refused_at_save_naming_the_slot():
    problems = check_source(mjml("{{ slots.n|round }}"), "Hi", "", N)
    assert list(problems) == ["slots.n"]
    assert problems["slots.n"].startswith("{{ slots.n|round }} cannot be rendered when every "
                                          "slot has its default value: ")
    assert "__round__" in problems["slots.n"]
    with pytest.raises(TemplateError):
        compile_source(mjml("{{ slots.n|round }}"), "Hi", "", N)
    # what the old check accepted (and then every send failed)
    assert compile_template(mjml("{{ slots.n|round }}"), "Hi", "", N)
    assert check_source(mjml("{{ slots.n|int|round }}"), "Hi", "", N) == {}


def test_an_optional_slot_is_rendered_empty_and_a_required_one_is_not():
    # truncate to the value's own length, ending in "!": only an empty value cannot fit it
    expr = "slots.n|truncate(slots.n|length, false, '!')"
    problems = check_source(mjml("{{ " + expr + " }}"), "Hi", "", N)
    assert problems["slots.n"] == ("{{ " + expr + " }} cannot be rendered when Number is "
                                   "empty: expected length >= 1, got 0")
    assert check_source(mjml("{{ " + expr + " }}"), "Hi", "", [dict(N[0], required=True)]) == {}


def test_a_slot_at_its_maximum_length_must_render():
    slots = [{"name": "t", "type": "text", "label": "Title", "default": "ab"}]
    source = mjml("{{ slots.t|replace('', slots.t)|replace('', slots.t) }}")
    problems = check_source(source, "Hi", "", slots)
    assert "cannot be rendered when Title is 10000 characters long: the message would be " \
           "larger than" in problems["slots.t"]
    # within a small max_length it renders
    assert check_source(source, "Hi", "", [dict(slots[0], max_length=20)]) == {}


def test_merge_fields_are_rendered_empty_and_long_at_save():
    problems = check_source(mjml("{{ contact.first_name|round }}"), "Hi", "", [])
    assert "__round__" in problems["mjml"]
    problems = check_source(mjml("Hi"), "{{ contact.first_name|truncate(contact.first_name|"
                                        "length) }}", "", [])
    assert "cannot be rendered when merge fields are empty" in problems["subject"]


def test_every_choice_is_rendered_at_save():
    slots = [{"name": "c", "type": "choice", "label": "Tone", "choices": ["warm", "cool"],
              "default": "warm"}]
    source = mjml("{{ slots.c|truncate(slots.c|replace('cool', '')|length) }}")
    problems = check_source(source, "Hi", "", slots)
    assert "cannot be rendered when Tone is 'cool'" in problems["slots.c"]


def test_api_refuses_round_on_a_text_slot_with_the_slot_named(app, make_api):
    _, token = make_user("brand_marketer")
    api = make_api(token)
    response = api.post("/api/templates", json={
        "name": "Round", "subject": "Hi", "mjml": mjml("{{ slots.n|round }}"), "slots": N})
    assert response.status_code == 422
    assert "slots.n" in response.json["error"]["fields"]
    response = api.post("/api/templates", json={
        "name": "Amplify", "subject": "Hi", "mjml": mjml(AMPLIFY), "slots": []})
    assert response.status_code == 422
    assert "larger than" in response.json["error"]["fields"]["mjml"]
    assert api.get("/api/templates").json["total"] == 0


# ------------------------------------------------ at send time: the send fails, with a reason

LEGACY = {
    "round": ("{{ slots.intro|round }}", "the template cannot be rendered: type str doesn't "
                                         "define __round__ method"),
    "amplify": (AMPLIFY, "the message would be larger than 4,000,000 characters"),
    "deep": (TOO_DEEP["parentheses"].replace("slots.n", "slots.intro"),
             "an expression is too deeply nested"),
}


@pytest.mark.parametrize("case", sorted(LEGACY))
def test_a_legacy_template_that_cannot_render_fails_its_sends_with_a_reason(app, case):
    expr, reason = LEGACY[case]
    clock.freeze(T0)
    with smtp_server() as (recorder, port), configured(
            app, DELIVERY_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)):
        launched = launch_campaign(2, prefix=f"legacy{case}")
        # A version published before these checks: its frozen template holds the expression.
        version = db.session.get(TemplateVersion, launched.version_ids[0])
        assert "{{ slots.intro }}" in version.compiled_html
        version.compiled_html = version.compiled_html.replace("{{ slots.intro }}", expr)
        db.session.commit()
        drain(app)  # the worker survives every row
        rows = db.session.execute(select(Send).where(
            Send.campaign_id == launched.campaign_id)).scalars().all()
        assert [r.status for r in rows] == ["failed", "failed"]
        assert all(reason in r.last_error for r in rows), [r.last_error for r in rows]
        assert recorder.parsed() == []


def test_preview_of_a_legacy_template_that_cannot_render_is_422(app, make_api):
    _, token = make_user("brand_marketer")
    api = make_api(token)
    created = api.post("/api/templates", json={"name": "T", "subject": "Hi",
                                               "mjml": mjml("{{ slots.n }}"), "slots": N})
    tid = created.json["id"]
    assert api.post(f"/api/templates/{tid}/publish").status_code == 200
    version = db.session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_id == tid))
    version.compiled_html = version.compiled_html.replace("{{ slots.n }}", "{{ slots.n|round }}")
    db.session.commit()
    response = api.get(f"/api/templates/{tid}/preview")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_template"
    assert "__round__" in response.json["error"]["message"]
