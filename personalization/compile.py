"""Compile once at publish: MJML -> HTML -> inlined CSS -> a frozen Jinja template.

Every `{{ ... }}` expression is swapped for an opaque alphanumeric token before MJML and
premailer see the document (premailer percent-encodes braces in hrefs), and swapped back
afterwards. Then every tracked `<a href>` becomes `{{ link(N) }}` with the original href kept
in `links[N]`, the open pixel goes before `</body>`, long lines are wrapped under the SMTP
limit, and a plain-text twin is derived from the same document.
"""

from __future__ import annotations

import functools
import html as htmllib
import logging
import re
import secrets
import textwrap
import traceback
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote

from core.errors import TemplateError
from core.i18n import _
from personalization.sandbox import PARSE_ENV, analyze, is_unsubscribe_expr
from personalization.slots import validate_slot_schema

MAX_MJML_CHARS = 500_000
MAX_SUBJECT_CHARS = 500
LINE_LIMIT = 700  # octets; leaves headroom under RFC 5322's 998 for rendered values
SMTP_LINE_LIMIT = 998
TEXT_WIDTH = 78
_BAD_SCHEMES = ("javascript:", "data:", "vbscript:", "file:")
_UNTRACKED_PREFIXES = ("mailto:", "tel:", "#")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compiled:
    """A published version's frozen artefacts."""

    html: str
    text: str
    links: list[str]


@dataclass
class _Doc:
    """Placeholder bookkeeping shared by the pipeline's steps."""

    nonce: str
    exprs: list[str] = field(default_factory=list)  # index -> expression source

    def token(self, expr: str) -> str:
        self.exprs.append(expr)
        return f"lmx{self.nonce}n{len(self.exprs) - 1}x"

    @property
    def token_re(self) -> re.Pattern[str]:
        return re.compile(rf"lmx{self.nonce}n(\d+)x")

    def restore(self, text: str) -> str:
        return self.token_re.sub(lambda m: "{{ " + self.exprs[int(m.group(1))] + " }}", text)


def _add(problems: dict[str, str], key: str, message: str) -> None:
    problems[key] = f"{problems[key]}; {message}" if key in problems else message


def _protect(pieces: list[tuple[str, str]], doc: _Doc, escape: bool = False) -> str:
    out = []
    for kind, text in pieces:
        if kind == "expr":
            out.append(doc.token(text))
        else:
            out.append(htmllib.escape(text, quote=False) if escape else text)
    return "".join(out)


_INCLUDE = re.compile(r"<\s*mj-include\b", re.IGNORECASE)


def _mjml_failure(exc: BaseException, source: str) -> str:
    """Describe an exception from the MJML compiler, naming the construct when possible."""
    component = None
    for frame, _lineno in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        name = getattr(owner, "componentName", None) or getattr(owner, "tagName", None)
        if isinstance(name, str):
            component = name
    if isinstance(exc, KeyError):
        detail = f"unknown or misplaced MJML element {exc.args[0]!r}"
    elif isinstance(exc, AssertionError):
        detail = f"unsupported MJML construct ({exc or 'assertion failed'})"
    elif isinstance(exc, OSError):
        detail = "the template refers to a file, which is not allowed"  # never echo paths
    else:
        detail = f"{type(exc).__name__}: {exc}"
    where = f" in <{component}>" if component else ""
    hint = ""
    if component == "mj-font" or (isinstance(exc, AssertionError) and "<mj-font" in source):
        hint = " (an mj-font re-declaring a default font such as Roboto is not supported)"
    return f"MJML could not be compiled{where}: {detail}{hint}"


def _mjml_to_html(source: str) -> tuple[str | None, list[str]]:
    # Imported on first compile: mjml and premailer take half a second to import, which
    # workers and tracking nodes (they never compile) should not pay at start.
    from mjml import mjml_to_html

    try:
        result = mjml_to_html(source)
    except Exception as exc:  # the port raises many kinds on input it cannot handle
        return None, [_mjml_failure(exc, source)]
    errors = [str(getattr(e, "message", e)) for e in (getattr(result, "errors", None) or [])]
    if errors:
        return None, [f"MJML error: {e}" for e in errors]
    return _quiet_preview(result.html), []


# MJML hides the preview text (mj-preview) in white; SpamAssassin's HTML_FONT_LOW_CONTRAST
# (0.7 points on every mail with a preheader) penalises hidden text in a colour close to its
# background. Hidden the same way without a colour it scores nothing.
_PREVIEW_STYLE = 'style="display:none;font-size:1px;color:#ffffff;line-height:1px;'
_QUIET_PREVIEW_STYLE = 'style="display:none;font-size:1px;line-height:1px;'


def _quiet_preview(html: str) -> str:
    return html.replace(_PREVIEW_STYLE, _QUIET_PREVIEW_STYLE, 1)


_CSS_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)


def _css_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(2)
        code = int(m.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return _CSS_ESCAPE.sub(one, text)


def imports_css(source: str) -> bool:
    """Tell whether `source` holds a CSS `@import`, however it is spelled (escapes, entities)."""
    text = _CSS_COMMENT.sub("", htmllib.unescape(source))
    return "@import" in _css_unescape(text).lower()


def _refuse_fetch(url: str) -> None:
    """A cssutils fetcher that loads nothing: compiling never reads a URL or a file."""
    _log.info("compile: refused to fetch %r referenced by a template's CSS", url[:200])
    return None


@functools.cache
def _premailer_class() -> type:
    """Premailer whose CSS parser cannot fetch (cssutils resolves @import even when premailer's
    allow_network is False) and which refuses every external stylesheet."""
    from cssutils import CSSParser
    from premailer import Premailer  # see _mjml_to_html: a real start-up cost

    class NoFetchPremailer(Premailer):  # type: ignore[misc]
        def _parse_css_string(self, css_body: str, validate: bool = True) -> object:
            parser = CSSParser(fetcher=_refuse_fetch, validate=validate)
            return parser.parseString(css_body)

        def _load_external(self, url: str) -> str:
            raise ValueError("external stylesheets are not loaded")

    return NoFetchPremailer


def _inline_css(html: str) -> tuple[str | None, str | None]:
    try:
        return _premailer_class()(
            html,
            allow_loading_external_files=False,
            cache_css_parsing=False,
            allow_network=False,
            remove_classes=False,
            keep_style_tags=True,
            strip_important=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform(), None
    except Exception as exc:  # cssutils/lxml failures on odd CSS
        return None, f"CSS could not be inlined: {type(exc).__name__}: {exc}"


_A_TAG = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)


def _rewrite_links(html: str, doc: _Doc, problems: dict[str, str]) -> tuple[str, list[str]]:
    """Replace tracked hrefs by `{{ link(N) }}` tokens; return (html, links)."""
    links: list[str] = []
    token_re = doc.token_re

    def one_href(m: re.Match[str]) -> str:
        raw = m.group(2) if m.group(2) is not None else (
            m.group(3) if m.group(3) is not None else m.group(4))
        value = htmllib.unescape(raw)
        squashed = re.sub(r"[\x00-\x20]+", "", unquote(value)).lower()
        if squashed.startswith(_BAD_SCHEMES):
            _add(problems, "links", f"{squashed.split(':')[0]}: links are not allowed")
            return m.group(0)
        whole = token_re.fullmatch(value.strip())
        if whole and is_unsubscribe_expr(doc.exprs[int(whole.group(1))]):
            return m.group(0)
        if squashed.startswith(_UNTRACKED_PREFIXES):
            return m.group(0)
        starts_with_expr = token_re.match(value.strip()) is not None
        if not starts_with_expr and not re.match(r"https?://[^/?#\s]", value.strip(), re.I):
            _add(problems, "links", f"href {doc.restore(value)[:100]!r} must be an absolute "
                                    "http(s) URL, mailto: or {{ unsubscribe_url }}")
            return m.group(0)
        links.append(doc.restore(value.strip()))
        return f'{m.group(1)}"{doc.token(f"link({len(links) - 1})")}"'

    def one_tag(m: re.Match[str]) -> str:
        return _HREF.sub(one_href, m.group(0), count=1)

    return _A_TAG.sub(one_tag, html), links


_JINJA_OPENERS = re.compile(r"\{(?=[{%#])")


def _escape_openers(text: str, doc: _Doc) -> str:
    """Keep literal `{{`, `{%`, `{#` (e.g. from minified CSS) from reading as Jinja syntax."""
    return _JINJA_OPENERS.sub(lambda _m: doc.token("'{'"), text)


# ---------------------------------------------------------------- line wrapping

def _break_points(line: str) -> list[tuple[int, bool]]:
    """Return (position, replace) where a newline leaves the HTML's rendering unchanged.

    replace=True turns the whitespace at `position` into a newline; False inserts one before it.
    """
    points: list[tuple[int, bool]] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if line.startswith("{{", i):  # a Jinja expression is atomic
            end = line.find("}}", i)
            i = n if end < 0 else end + 2
        elif ch == "<" and i + 1 < n and line[i + 1] == "!":  # comment/conditional/doctype
            end = line.find(">", i)
            i = n if end < 0 else end + 1
        elif ch == "<" and i + 1 < n and (line[i + 1].isalpha() or line[i + 1] == "/"):
            i += 1
            quote = None
            attr_is_style = False
            word_start = i
            while i < n:
                c = line[i]
                if quote:
                    if line.startswith("{{", i):
                        end = line.find("}}", i)
                        i = n if end < 0 else end + 2
                        continue
                    if c == quote:
                        quote = None
                    elif c == ";" and attr_is_style and i + 1 < n:
                        points.append((i + 1, False))
                elif c in "\"'":
                    quote = c
                    attr_is_style = line[word_start:i].strip().lower().rstrip("=").strip() == (
                        "style")
                elif c == ">":
                    points.append((i, False))
                    break
                elif c in " \t":
                    points.append((i, True))
                    word_start = i + 1
                elif line.startswith("{{", i):
                    end = line.find("}}", i)
                    i = n if end < 0 else end + 2
                    continue
                i += 1
            i += 1
        else:
            if ch in " \t":
                points.append((i, True))
            i += 1
    return points


def wrap_html_line(line: str, limit: int = LINE_LIMIT) -> tuple[list[str], bool]:
    """Split one HTML line into lines of at most `limit` octets; return (lines, ok)."""
    data = line.encode()
    if len(data) <= limit:
        return [line], True
    offsets = [0]
    for ch in line:
        offsets.append(offsets[-1] + len(ch.encode()))
    points = _break_points(line)
    lines: list[str] = []
    start = 0  # char index where the current output line starts
    ok = True
    k = 0
    while offsets[-1] - offsets[start] > limit:
        best = None
        while k < len(points) and offsets[points[k][0]] - offsets[start] <= limit:
            if points[k][0] > start:
                best = points[k]
            k += 1
        if best is None:
            later = [p for p in points[k:] if p[0] > start]
            if not later:
                ok = False
                break
            best = later[0]
            ok = False
        pos, replace = best
        lines.append(line[start:pos])
        start = pos + 1 if replace else pos
    lines.append(line[start:])
    return lines, ok


def wrap_html(html: str, limit: int = LINE_LIMIT) -> tuple[str, bool]:
    """Wrap every line of `html` under `limit` octets without changing how it renders."""
    out: list[str] = []
    ok = True
    for line in html.split("\n"):
        parts, line_ok = wrap_html_line(line, limit)
        ok = ok and line_ok
        out.extend(parts)
    return "\n".join(out), ok


# ---------------------------------------------------------------- plain-text part

_BLOCK = {"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
          "blockquote", "section", "header", "footer"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "source", "wbr"}
_SKIP = {"head", "style", "script", "title"}


class _TextMaker(HTMLParser):
    """Turn the (token-carrying) HTML into readable text with `[URL]` after each link."""

    def __init__(self, doc: _Doc):
        super().__init__(convert_charrefs=True)
        self.doc = doc
        self.out: list[str] = []
        self.stack: list[tuple[str, bool]] = []
        self.link: tuple[str, list[str]] | None = None

    @property
    def hidden(self) -> bool:
        return any(h for _t, h in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        style = attr.get("style", "").replace(" ", "").lower()
        hidden = tag in _SKIP or "display:none" in style
        if tag not in _VOID:
            self.stack.append((tag, hidden))
        if self.hidden:
            return
        if tag in _BLOCK or tag == "li":
            self.out.append("\n\n" if tag in ("p", "h1", "h2", "h3") else "\n")
            if tag == "li":
                self.out.append("- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self.out.append("\n----------\n")
        elif tag == "a":
            self.link = (attr.get("href", ""), [])
        elif tag == "img" and self.link is not None and attr.get("alt"):
            self.link[1].append(attr["alt"])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.link is not None and not self.hidden:
            href, words = self.link
            self.link = None
            label = " ".join("".join(words).split())
            if href and not href.startswith("#"):
                target = href[7:] if href.lower().startswith("mailto:") else href
                self.out.append(f"{label} [{target}]" if label and label != target else target)
            else:
                self.out.append(label)
        if tag in _BLOCK and not self.hidden:
            self.out.append("\n\n" if tag in ("p", "h1", "h2", "h3") else "\n")
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.link is not None:
            self.link[1].append(data)
        else:
            self.out.append(data)


def html_to_text(html: str, doc: _Doc | None = None) -> str:
    """Return a plain-text rendering of `html` (paragraphs, list items, links as `text [url]`)."""
    maker = _TextMaker(doc or _Doc(nonce=""))
    maker.feed(html)
    maker.close()
    raw = "".join(maker.out)
    lines: list[str] = []
    blank = 0
    for line in raw.split("\n"):
        line = " ".join(line.split())
        if not line:
            blank += 1
            if blank == 1 and lines:
                lines.append("")
            continue
        blank = 0
        lines.extend(textwrap.wrap(line, TEXT_WIDTH, break_long_words=False,
                                   break_on_hyphens=False) or [""])
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the pipeline

def _insert_preview(mjml: str, preview: str) -> str:
    tag = f"<mj-preview>{preview}</mj-preview>"
    head = re.search(r"<mj-head\b[^>]*>", mjml)
    if head:
        return mjml[: head.end()] + tag + mjml[head.end():]
    root = re.search(r"<mjml\b[^>]*>", mjml)
    assert root is not None
    return mjml[: root.end()] + f"<mj-head>{tag}</mj-head>" + mjml[root.end():]


def _run(mjml: object, subject: object, preheader: object,
         slots: object) -> tuple[dict[str, str], Compiled | None]:
    problems: dict[str, str] = {}
    normalized, slot_problems = validate_slot_schema(slots)
    problems.update(slot_problems)
    types = {s["name"]: s["type"] for s in normalized}
    richtext = {name for name, kind in types.items() if kind == "richtext"}

    if not isinstance(subject, str) or not subject.strip():
        _add(problems, "subject", "is required")
        subject = ""
    elif len(subject) > MAX_SUBJECT_CHARS or "\r" in subject or "\n" in subject:
        _add(problems, "subject", f"must be one line of at most {MAX_SUBJECT_CHARS} characters")
    if preheader is None:
        preheader = ""
    if not isinstance(preheader, str) or len(preheader) > MAX_SUBJECT_CHARS:
        _add(problems, "preheader", f"must be a string of at most {MAX_SUBJECT_CHARS} characters")
        preheader = ""
    if not isinstance(mjml, str) or not mjml.strip():
        _add(problems, "mjml", "is required")
        mjml = ""
    elif len(mjml) > MAX_MJML_CHARS:
        _add(problems, "mjml", f"must be at most {MAX_MJML_CHARS} characters")
        mjml = ""
    assert isinstance(mjml, str) and isinstance(subject, str) and isinstance(preheader, str)

    for key, source in (("mjml", mjml), ("subject", subject), ("preheader", preheader)):
        if "\x00" in source:
            _add(problems, key, "must not contain NUL characters")
    if _INCLUDE.search(mjml):
        # The compiler would read the named file from this server's disk into the email.
        _add(problems, "mjml", "<mj-include> is not allowed: a template must be self-contained")
        return problems, None
    if imports_css(mjml):
        # cssutils would fetch the URL (or read the file) while inlining: an SSRF from the
        # brand editor. Compiling never reads anything but the template itself.
        _add(problems, "mjml", _("CSS @import is not allowed: the server never loads "
                                 "stylesheets from other addresses or files; write the CSS "
                                 "in <mj-style> instead"))
        return problems, None
    if any("\x00" in p for p in problems.values()) or any(
            "NUL" in p for p in problems.values()):
        return problems, None
    used: set[str] = set()
    analyses = {}
    for key, source in (("mjml", mjml), ("subject", subject), ("preheader", preheader)):
        analysis = analyze(source)
        analyses[key] = analysis
        for problem in analysis.problems:
            _add(problems, key, problem)
        used |= analysis.slot_refs
        if key != "mjml":
            for text in (t for k, t in analysis.pieces if k == "expr"):
                if "link(" in text or "open_pixel" in text:
                    _add(problems, key, "links and tracking are not available here")
        if key != "mjml" and analysis.slot_refs & richtext:
            names = ", ".join(sorted(analysis.slot_refs & richtext))
            _add(problems, key, f"richtext slots ({names}) can only be used in the body")
    for name in sorted(used - set(types)):
        _add(problems, f"slots.{name}", "is used in the template but not declared")
    for name in sorted(set(types) - used):
        if not any(k.startswith(f"slots.{name}") for k in problems):
            _add(problems, f"slots.{name}", "is declared but not used in the template")

    if not mjml or analyses["mjml"].problems:
        return problems, None
    if not re.match(r"\s*<mjml\b", mjml):
        _add(problems, "mjml", "must start with an <mjml> root element")
        return problems, None

    nonce = secrets.token_hex(4)
    while nonce in mjml or nonce in preheader:
        nonce = secrets.token_hex(4)
    doc = _Doc(nonce)
    source = _protect(analyses["mjml"].pieces, doc)
    author_tokens = len(doc.exprs)
    expr_pieces = [j for j, p in enumerate(analyses["mjml"].pieces) if p[0] == "expr"]
    richtext_tokens = {
        i for i, j in enumerate(expr_pieces) if analyses["mjml"].expr_slots.get(j, set()) & richtext
    }
    if preheader.strip() and not analyses["preheader"].problems:
        if "<mj-preview" in mjml:
            _add(problems, "preheader", "the MJML already has an <mj-preview>; keep only one")
        else:
            source = _insert_preview(source, _protect(analyses["preheader"].pieces, doc, True))

    html, errors = _mjml_to_html(source)
    if html is None:
        for error in errors:
            _add(problems, "mjml", error)
        return problems, None
    html, error = _inline_css(html)
    if html is None:
        _add(problems, "mjml", error or "CSS could not be inlined")
        return problems, None

    token_re = doc.token_re
    present = {int(i) for i in token_re.findall(html)}
    for i in range(author_tokens):
        if i not in present:
            _add(problems, "mjml", f"{{{{ {doc.exprs[i][:80]} }}}} was dropped by the MJML "
                                   "compiler (expressions cannot go inside CSS or tag names)")
    for tag in re.finditer(r"<[A-Za-z/!][^>]*>", html):
        for m in token_re.finditer(tag.group(0)):
            if int(m.group(1)) in richtext_tokens:
                _add(problems, "mjml", f"richtext {{{{ {doc.exprs[int(m.group(1))]} }}}} can "
                                       "only be used as text content, not inside a tag")

    html = _escape_openers(html, doc)
    html, links = _rewrite_links(html, doc, problems)
    text = _escape_openers(html_to_text(html, doc), doc)
    pixel = doc.token("open_pixel")
    body_end = html.lower().rfind("</body>")
    html = html[:body_end] + pixel + html[body_end:] if body_end >= 0 else html + pixel

    final_html, wrapped = wrap_html(doc.restore(html))
    if not wrapped or any(len(line.encode()) > SMTP_LINE_LIMIT
                          for line in final_html.split("\n")):
        _add(problems, "mjml", "a line is longer than 998 octets and has no safe place to wrap "
                               "(e.g. a very long URL)")
    final_text = doc.restore(text)
    if problems:
        return problems, None
    for kind, template in (("html", final_html), ("text", final_text)):
        try:
            PARSE_ENV.parse(template)
        except Exception as exc:  # a bug of ours, but never a 500 for the author
            _add(problems, "mjml", f"compiled {kind} template does not parse: {exc}")
    if problems:
        return problems, None
    return problems, Compiled(html=final_html, text=final_text, links=links)


def compile_plain(mjml: str) -> tuple[str, str]:
    """Compile finished MJML (no template expressions) to inlined HTML and its plain text.

    For the product's own untracked emails (personalization.account_mail); raises
    TemplateError if the MJML does not compile.
    """
    html, errors = _mjml_to_html(mjml)
    if html is not None:
        html, error = _inline_css(html)
        errors = [error] if html is None and error else errors
    if html is None:
        raise TemplateError("The email could not be built.", {"mjml": "; ".join(errors)})
    html, _wrapped = wrap_html(html)
    return html, html_to_text(html)


def compile_or_problems(mjml: object, subject: object, preheader: object,
                        slots: object) -> tuple[dict[str, str], Compiled | None]:
    """Compile a template; return (problems, compiled), compiled None unless problems is empty.

    This checks the source only; `personalization.render.check_source` also renders it."""
    return _run(mjml, subject, preheader, slots)


def check_template(mjml: object, subject: object, preheader: object,
                   slots: object) -> dict[str, str]:
    """Return every problem of a template (empty dict = publishable)."""
    return _run(mjml, subject, preheader, slots)[0]


def compile_template(mjml: object, subject: object, preheader: object,
                     slots: object) -> Compiled:
    """Compile a template once for publishing; raise TemplateError listing every problem."""
    problems, compiled = _run(mjml, subject, preheader, slots)
    if problems or compiled is None:
        raise TemplateError("The template is invalid.", problems or {"mjml": "did not compile"})
    return compiled
