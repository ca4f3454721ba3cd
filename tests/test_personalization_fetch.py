"""Compiling a template reads nothing but the template: no URL, no file (issue 15, item 1).

A real HTTP server on 127.0.0.1 counts every request it gets. Each way a template could make
the compile step fetch (an `@import` in `<mj-style>`, in `mj-raw <style>`, spelled with CSS
escapes or HTML entities, an `mj-font`) is tried on create, draft preview, publish and the
editor's live preview: the server sees 0 requests, the author a clear error, nothing is saved.
"""

from __future__ import annotations

import http.server
import re
import threading
import urllib.request

import pytest

from core.db import db
from journeys.models import Template, TemplateVersion
from personalization.compile import _inline_css, check_template, compile_template, imports_css
from tests.builders import make_user

PASSWORD = "correct horse battery"


class CountingServer:
    """A stylesheet server on 127.0.0.1 that records every path it is asked for."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hits.append(self.path)
                body = b"p { color: red }"
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def css_server():
    server = CountingServer()
    # The counter works: a real fetch is seen (so the 0s below mean something).
    with urllib.request.urlopen(f"{server.url}/control.css") as response:  # noqa: S310
        assert response.read() == b"p { color: red }"
    assert server.hits == ["/control.css"]
    server.hits.clear()
    yield server
    server.close()


def mjml(body: str, head: str = "") -> str:
    return (f"<mjml><mj-head>{head}</mj-head><mj-body>{body}<mj-section><mj-column>"
            "<mj-text>Hello {{ contact.first_name }}</mj-text></mj-column></mj-section>"
            "</mj-body></mjml>")


def hostile_sources(url: str) -> dict[str, str]:
    return {
        "mj-style": mjml("", f"<mj-style>@import url({url}/a.css); p {{ color: blue }}"
                             "</mj-style>"),
        "mj-style inline": mjml("", f'<mj-style inline="inline">@import "{url}/b.css";'
                                    "</mj-style>"),
        "mj-raw style in head": mjml("", f"<mj-raw><style>@import url({url}/c.css);</style>"
                                         "</mj-raw>"),
        "mj-raw style in body": mjml(f"<mj-raw><style>@import url('{url}/d.css');</style>"
                                     "</mj-raw>"),
        "upper case": mjml("", f"<mj-style>@IMPORT url({url}/e.css);</mj-style>"),
        "css escape": mjml("", f"<mj-style>@\\69mport url({url}/f.css);</mj-style>"),
        "css escape with space": mjml("", f"<mj-style>@\\000069 mport url({url}/g.css);"
                                          "</mj-style>"),
        "html entity": mjml("", f"<mj-style>&#64;import url({url}/h.css);</mj-style>"),
        "comment inside": mjml("", f"<mj-style>@im/**/port url({url}/i.css);</mj-style>"),
        "a file": mjml("", "<mj-style>@import url(file:///etc/passwd);</mj-style>"),
    }


IMPORT_ERROR = "CSS @import is not allowed"


def test_every_spelling_of_import_is_refused_before_anything_is_fetched(css_server):
    for case, source in hostile_sources(css_server.url).items():
        problems = check_template(source, "Hi", "", [])
        assert IMPORT_ERROR in problems.get("mjml", ""), (case, problems)
    assert css_server.hits == []


def test_the_css_inliner_itself_cannot_fetch(css_server):
    # Even HTML that reached premailer with an @import (the source check bypassed) is
    # inlined without a request: cssutils gets a fetcher that loads nothing.
    html = (f"<html><head><style>@import url({css_server.url}/direct.css); p {{ color: blue }}"
            f'</style><link rel="stylesheet" href="{css_server.url}/link.css"></head>'
            "<body><p>Hi</p></body></html>")
    inlined, error = _inline_css(html)
    assert error is None and inlined is not None
    assert "color:blue" in inlined.replace(" ", "")
    assert css_server.hits == []


def test_mj_font_still_compiles_and_its_stylesheet_is_left_to_the_mail_client(css_server):
    source = mjml("", f'<mj-font name="Brandface" href="{css_server.url}/font.css" />')
    source = source.replace("<mj-text>", '<mj-text font-family="Brandface, Arial">')
    compiled = compile_template(source, "Hi", "", [])
    assert f"{css_server.url}/font.css" in compiled.html  # the recipient's client loads it
    assert css_server.hits == []


def test_import_detection_is_not_fooled_and_not_overeager():
    assert imports_css("@import url(x)")
    assert imports_css("@\\49 MPORT url(x)")
    assert imports_css("&#x40;import url(x)")
    assert not imports_css("write to import@acme.example")
    assert not imports_css("@media screen { p { color: red } }")
    assert not imports_css("@\\110000mport")  # an out-of-range escape is not an i


def _login(client, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302


def _csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _stored_draft(source: str) -> int:
    """A draft as a deployment might hold it from before this check (saved unchecked)."""
    template = Template(name="Legacy")
    version = TemplateVersion(template=template, version=1, status="draft", name="Legacy",
                              subject="Hi", preheader="", mjml=source, slots=[])
    db.session.add_all([template, version])
    db.session.commit()
    return template.id


def test_api_refuses_import_on_create_update_preview_and_publish(app, make_api, css_server):
    _, token = make_user("brand_marketer")
    api = make_api(token)
    sources = hostile_sources(css_server.url)
    for case in ("mj-style", "mj-raw style in body", "css escape"):
        response = api.post("/api/templates", json={"name": "T", "subject": "Hi",
                                                    "mjml": sources[case], "slots": []})
        assert response.status_code == 422, (case, response.json)
        assert IMPORT_ERROR in response.json["error"]["fields"]["mjml"]
    assert api.get("/api/templates").json["total"] == 0

    good = api.post("/api/templates", json={"name": "T", "subject": "Hi",
                                            "mjml": mjml(""), "slots": []})
    assert good.status_code == 201
    response = api.put(f"/api/templates/{good.json['id']}", json={
        "name": "T", "subject": "Hi", "mjml": sources["mj-style"], "slots": []})
    assert response.status_code == 422
    assert IMPORT_ERROR in response.json["error"]["fields"]["mjml"]
    assert len(api.get(f"/api/templates/{good.json['id']}").json["versions"]) == 1

    legacy = _stored_draft(sources["mj-raw style in head"])
    response = api.get(f"/api/templates/{legacy}/preview")
    assert response.status_code == 422
    assert IMPORT_ERROR in response.json["error"]["fields"]["mjml"]
    response = api.post(f"/api/templates/{legacy}/publish")
    assert response.status_code == 422
    assert IMPORT_ERROR in response.json["error"]["fields"]["mjml"]
    db.session.expire_all()
    assert db.session.get(TemplateVersion, legacy).status == "draft"
    assert db.session.get(TemplateVersion, legacy).compiled_html is None
    assert css_server.hits == []


def test_editor_shows_the_import_error_inline_and_saves_nothing(app, client, css_server):
    user, _ = make_user("brand_marketer", password=PASSWORD)
    _login(client, user.email)
    token = _csrf(client, "/brand/templates/new")
    source = hostile_sources(css_server.url)["mj-style"]
    form = {"csrf_token": token, "name": "Imports", "subject": "Hi", "mjml": source}

    preview = client.post("/brand/templates/preview", data=form)
    assert preview.status_code == 200
    assert IMPORT_ERROR in preview.get_data(as_text=True)

    saved = client.post("/brand/templates/new", data=form)
    assert saved.status_code == 422
    assert IMPORT_ERROR in saved.get_data(as_text=True)
    assert db.session.query(Template).count() == 0

    legacy = _stored_draft(source)
    published = client.post(f"/brand/templates/{legacy}/publish", data={"csrf_token": token})
    assert published.status_code == 422
    assert IMPORT_ERROR in published.get_data(as_text=True)
    assert css_server.hits == []
