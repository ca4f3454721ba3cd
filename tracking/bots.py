"""Machine engagement: classify opens and clicks from evidence, never drop them.

Classification happens in the drainer (off the request path), with the send's `sent_at`, the
number of links in the message, the send's recent clicks and whether a person already opened
it at hand. A machine event is recorded like any other, flagged `machine=True` with a reason;
analytics show it beside the human counts and journey conditions ignore it.

The rule is *evidence, not suspicion*: an open or click is a machine's only when something
positive says so. What counts as evidence, and where each list comes from:

Opens
- **Apple Mail Privacy Protection** (MPP) prefetches every remote image when the message
  reaches the device, whether or not anyone reads it. Its fetches come from Apple's own
  network with the bare user agent ``Mozilla/5.0`` (no platform, no engine), usually within
  minutes of delivery. Any two of those three signals make an open machine; the bare agent
  alone does too (no browser or mail client sends it). Apple's networks: 17.0.0.0/8 (ARIN
  NET-17-0-0-0-1, Apple Inc., AS714) and 2620:149::/32 (ARIN, Apple Inc.); the MPP
  behaviour is described in Apple's "Use Mail Privacy Protection on iPhone" (support.apple.com
  HT212609-style pages) and measured by ESPs (Litmus, Validity, SparkPost, 2021-2023 posts on
  MPP opens: bare UA, Apple IPs, fetch at delivery).
- **Gmail, Yahoo and Microsoft image proxies** fetch images when a person opens the message
  (Gmail: "Mozilla/5.0 ... (via ggpht.com GoogleImageProxy)", Google's "Images in Gmail"
  announcement, 2013; Yahoo: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-
  SLN28749.html"; Microsoft: the Outlook mobile apps' "Outlook-iOS-Android" fetcher and
  Outlook on the web's image proxy). They are *human* opens flagged ``proxied``: the person is
  real, their device and location are not known.

Clicks (and opens) are machine on positive evidence only:
- the hidden honeypot link no person can see (`core.tokens.HONEYPOT_LINK`);
- a HEAD request, or a request announcing itself as a prefetch (``Purpose: prefetch``,
  ``Sec-Purpose: prefetch``, ``X-Moz: prefetch``, ``X-Purpose: preview``);
- an address in a mail security vendor's published network (`_SCANNER_NETWORKS`, with the
  page each range list comes from);
- a scanner's or link previewer's user agent (`_SCANNER_UA`, `_PREVIEW_UA`);
- every link of a message clicked within `ALL_LINKS_WINDOW` (a scanner following each href);
- a click with no open before it, arriving before the message could have been read
  (`READ_WINDOW` after delivery) *and* from a user agent that is not a browser's.

A person who opens at +4 s and clicks at +8 s from a phone's browser is a person: no flat
"too soon" window applies to browsers.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from typing import NamedTuple

from core.tokens import HONEYPOT_LINK

ALL_LINKS_WINDOW = timedelta(seconds=5)  # every link of a message clicked within this window
# A click before this, with no open before it, could not come from someone who read the mail.
READ_WINDOW = timedelta(seconds=120)
# MPP prefetches when the message reaches the device: minutes after delivery, not hours.
PREFETCH_WINDOW = timedelta(minutes=15)

# Image proxies that fetch on a person's open: human opens, flagged proxied.
_PROXY_UA = re.compile(
    r"GoogleImageProxy|via ggpht\.com|YahooMailProxy|Outlook-iOS-Android|OWA-ImageProxy|"
    r"ms-office-image-proxy",
    re.I,
)
# Mail security scanners and HTTP libraries. Vendor names as their agents announce them:
# Barracuda ("Barracuda Sentinel", "BarracudaCentral"), Mimecast ("Mimecast URL Protect"),
# Proofpoint ("Proofpoint URL Defense", urldefense.com), Microsoft Office link checks
# ("Microsoft Office Existence Discovery", "ms-office; MSOffice"), Symantec, Trend Micro,
# Forcepoint, FireEye, Cisco IronPort, Sophos; headless browsers and scripting libraries.
_SCANNER_UA = re.compile(
    r"barracuda|mimecast|proofpoint|urldefense|symantec|trend ?micro|forcepoint|fireeye|"
    r"cisco|ironport|sophos|safelinks|safe links|linkscan|existence discovery|ms-office|"
    r"headlesschrome|phantomjs|python-requests|python-urllib|aiohttp|httpx|go-http-client|"
    r"curl/|wget/|java/|okhttp|libwww|node-fetch|axios/|scrapy|"
    r"crawler|spider|scanner",
    re.I,
)
# Link previewers: chat and social apps that fetch a pasted or forwarded link to draw a card
# (each vendor documents its agent: Slack "Slackbot-LinkExpanding", Meta
# "facebookexternalhit", X "Twitterbot", LinkedIn "LinkedInBot", WhatsApp "WhatsApp/",
# Telegram "TelegramBot", Discord "Discordbot", Microsoft Teams/Skype "SkypeUriPreview",
# Bing "BingPreview", Apple "Applebot", Google "Googlebot"/"Google-Safety", Iframely, Embedly).
_PREVIEW_UA = re.compile(
    r"slackbot|slack-imgproxy|facebookexternalhit|facebot|twitterbot|linkedinbot|whatsapp/|"
    r"telegrambot|discordbot|skypeuripreview|bingpreview|applebot|googlebot|google-safety|"
    r"iframely|embedly|pinterestbot|redditbot|vkshare|(?<!cu)bot\b",
    re.I,
)
_BARE_MOZILLA = re.compile(r"^Mozilla/5\.0$")
# What browsers and mail clients send: "Mozilla/5.0 (<platform>) <engine>/...". In-app
# webviews (iOS Mail, Gmail's app) send the platform and engine without a product token.
_BROWSER = re.compile(
    r"^Mozilla/5\.0 \((?:Windows|Macintosh|X11|Linux|Android|iPhone|iPad|iPod|CrOS)[^)]*\) "
    r".*(?:AppleWebKit/|Gecko/|Trident/)",
)

_APPLE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "17.0.0.0/8",       # ARIN NET-17-0-0-0-1, Apple Inc. (AS714)
    "2620:149::/32",    # ARIN, Apple Inc.
))
# Mail security gateways that open and follow links before (or instead of) a person. Each
# list is the vendor's published range for its mail-processing data centres; refresh them
# from the pages named when a vendor announces a change.
_SCANNER_NETWORKS: dict[str, tuple] = {
    # Microsoft Defender for Office 365 Safe Links / Exchange Online Protection: "Microsoft 365
    # URLs and IP address ranges" (learn.microsoft.com/microsoft-365/enterprise/
    # urls-and-ip-address-ranges), Exchange Online rows 9 and 10.
    "microsoft_safe_links": ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/15", "52.102.0.0/16",
                             "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"),
    # Mimecast: "Mimecast Data Centers and URLs" (community.mimecast.com), US, UK, DE and ZA
    # grids.
    "mimecast": ("205.139.110.0/24", "207.211.30.0/24", "207.211.31.0/25", "216.205.24.0/24",
                 "170.10.128.0/22", "170.10.132.0/22", "63.128.21.0/24", "195.130.217.0/24",
                 "91.220.42.0/24", "146.101.78.0/24", "185.58.84.0/22", "41.74.192.0/22"),
    # Proofpoint on Demand (pphosted.com) and Proofpoint Essentials: "Proofpoint IP addresses
    # and ranges" (help.proofpoint.com) and the Essentials "IP Addresses to allow" page.
    "proofpoint": ("67.231.144.0/20", "148.163.128.0/19", "208.84.64.0/21", "208.86.200.0/21",
                   "67.219.240.0/20", "185.132.180.0/22"),
    # Barracuda Email Gateway Defense (formerly Email Security Service): "Barracuda Email
    # Security Service IP ranges" (campus.barracuda.com).
    "barracuda": ("64.235.144.0/20", "209.222.80.0/21", "35.157.190.224/27"),
}
_SCANNER_NETS = tuple(
    (ipaddress.ip_network(net), vendor)
    for vendor, nets in _SCANNER_NETWORKS.items() for net in nets
)

HOW_HEAD = "HEAD"
HOW_PREFETCH = "prefetch"


class Verdict(NamedTuple):
    """What classify() decided: machine or not, why, and whether a proxy hid the device."""

    machine: bool
    reason: str = ""
    proxied: bool = False


HUMAN = Verdict(False)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def is_apple_network(ip: str) -> bool:
    """Tell whether `ip` is in Apple's own networks (where MPP prefetches come from)."""
    addr = _address(ip)
    return addr is not None and any(addr in net for net in _APPLE_NETWORKS)


def scanner_network(ip: str) -> str:
    """Return the mail security vendor whose published network holds `ip` ('' if none)."""
    addr = _address(ip)
    if addr is None:
        return ""
    for net, vendor in _SCANNER_NETS:
        if addr.version == net.version and addr in net:
            return vendor
    return ""


def looks_like_browser(user_agent: str) -> bool:
    """Tell whether a user agent has a browser's or mail client's shape."""
    return bool(_BROWSER.match(user_agent)) and "headless" not in user_agent.lower()


def classify(kind: str, user_agent: str, ip: str, *, occurred_at: datetime,
             sent_at: datetime | None, link_index: int | None = None,
             link_count: int = 0, recent_click_links: dict[int, datetime] | None = None,
             how: str = "", opened_before: bool = True) -> Verdict:
    """Return the Verdict for an open or click; other kinds are never machine.

    `how` is '' for a plain GET, HOW_HEAD or HOW_PREFETCH; `opened_before` tells whether a
    person opened the message before this click.
    """
    if kind not in ("open", "click"):
        return HUMAN
    ua = (user_agent or "").strip()
    since = occurred_at - sent_at if sent_at is not None else None
    soon = since is not None and timedelta(0) <= since
    if kind == "click" and link_index == HONEYPOT_LINK:
        return Verdict(True, "honeypot_link")
    if how == HOW_HEAD:
        return Verdict(True, "head_request")
    if how == HOW_PREFETCH:
        return Verdict(True, "prefetch_request")
    vendor = scanner_network(ip)
    if vendor:
        return Verdict(True, vendor)
    if _PROXY_UA.search(ua):
        # Image proxies fetch images on a person's open; they never follow links.
        return Verdict(False, "", True) if kind == "open" else Verdict(True, "image_proxy")
    bare = bool(_BARE_MOZILLA.match(ua))
    apple = is_apple_network(ip)
    if kind == "open" and (bare or (apple and (not looks_like_browser(ua) or (
            soon and since < PREFETCH_WINDOW)))):
        return Verdict(True, "apple_mail_privacy")
    if kind == "click" and (bare or (apple and not looks_like_browser(ua))):
        return Verdict(True, "apple_proxy")
    if _PREVIEW_UA.search(ua):
        return Verdict(True, "link_preview")
    if not ua or _SCANNER_UA.search(ua):
        return Verdict(True, "scanner_user_agent")
    if kind != "click":
        return HUMAN
    if link_count >= 2 and recent_click_links is not None:
        window_start = occurred_at - ALL_LINKS_WINDOW
        clicked = {i for i, at in recent_click_links.items() if at >= window_start}
        clicked.add(link_index if link_index is not None else -1)
        if all(i in clicked for i in range(link_count)):
            return Verdict(True, "clicked_every_link")
    if (not opened_before and soon and since < READ_WINDOW
            and not looks_like_browser(ua)):
        return Verdict(True, "unread_click_not_a_browser")
    return HUMAN
