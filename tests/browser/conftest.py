"""Browser test harness: the app in a real WSGI server thread, Debian's Chromium via Playwright."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.builders import make_user

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# A desktop browser's user agent: HeadlessChrome would (rightly) be classified as a machine.
DESKTOP_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/130.0.0.0 Safari/537.36")
PASSWORD = "browser-test-password"
WIDTHS = (1280, 390)


@pytest.fixture(scope="session")
def server_url(app) -> Iterator[str]:
    """Serve the session's app on a free loopback port from a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def live(app, server_url) -> Iterator[str]:
    """Point PUBLIC_BASE_URL at the live server for this test (tracked links must work)."""
    previous = app.config["PUBLIC_BASE_URL"]
    app.config["PUBLIC_BASE_URL"] = server_url
    yield server_url
    app.config["PUBLIC_BASE_URL"] = previous


@pytest.fixture(scope="session")
def chromium():
    """One Chromium for the whole run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Person:
    """One signed-in browser context (its own cookies), failing on any JS dialog or error."""

    def __init__(self, chromium, base: str) -> None:
        self.base = base
        self.context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                            user_agent=DESKTOP_UA)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def go(self, path: str):
        return self.page.goto(self.base + path)

    def login(self, email: str, password: str = PASSWORD) -> None:
        self.go("/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def close(self) -> None:
        assert not self.dialogs, f"a script ran: {self.dialogs}"
        assert not self.errors, f"JavaScript errors: {self.errors}"
        self.context.close()


@pytest.fixture
def people(chromium, live):
    """Factory: people(email) -> a signed-in Person; all are closed (and checked) at the end."""
    made: list[Person] = []

    def make(email: str | None = None) -> Person:
        person = Person(chromium, live)
        made.append(person)
        if email:
            person.login(email)
        return person

    yield make
    for person in made:
        person.close()


_users = itertools.count(1)


def user_with_password(role: str, partner=None):
    """Create a user who can sign in with PASSWORD (on a mailable domain: it is a reply-to)."""
    user, _ = make_user(role, partner, email=f"{role}.{next(_users)}@example.com",
                        password=PASSWORD)
    return user


AXE_SOURCE = (Path(__file__).resolve().parent.parent / "vendor" / "axe.min.js").read_text()
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def accessibility_violations(page) -> list[str]:
    """Run axe-core (tests/vendor, vendored from npm) on the page: WCAG 2.1 A and AA rules."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # evaluate() runs through the DevTools protocol, so the page's CSP does not block it.
        page.evaluate("(source) => { (0, eval)(source); }", AXE_SOURCE)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes'][0]['target']}"
            + (f" and {len(v['nodes']) - 1} more" if len(v["nodes"]) > 1 else "")
            for v in result["violations"]]


def snap(page, name: str) -> None:
    """Save the page at 1280 and 390 px wide; fail if it scrolls sideways or axe-core finds
    a WCAG 2.1 AA violation at either width."""
    ARTIFACTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^a-z0-9_-]+", "-", name.lower())
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        # Two animation frames: the layout has been redone at the new width.
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => "
                      "requestAnimationFrame(r)))")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name}: horizontal scroll at {width}px ({overflow}px wide)"
        # A sandboxed preview iframe outside the viewport is not painted (Chromium throttles
        # off-screen cross-origin frames), so the screenshot is taken with a window as tall as
        # the page: every frame is on screen and painted.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": width, "height": max(900, min(height, 8000))})
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => "
                      "requestAnimationFrame(r)))")
        page.screenshot(path=str(ARTIFACTS / f"{safe}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": width, "height": 900})
        violations = accessibility_violations(page)
        assert not violations, f"{name} at {width}px: " + "; ".join(violations)
    page.set_viewport_size({"width": 1280, "height": 900})


def scripts_ready(page) -> None:
    """Wait until the page's deferred scripts have run (they run before DOMContentLoaded).

    After a navigation started by a click, Playwright acts as soon as an element is there,
    which on a loaded machine can be before app.js has wired the as-you-type checks: typing
    then sends nothing. Call this before typing into a field whose script reaction is awaited.
    """
    page.wait_for_load_state("domcontentloaded")
