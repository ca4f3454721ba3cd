"""Machine engagement: classify opens and clicks made by proxies and scanners, never drop them.

Classification happens in the drainer (off the request path), with the send's `sent_at`, the
number of links in the message and the send's recent clicks at hand. A machine event is
recorded like any other, flagged `machine=True` with a reason; analytics show it beside the
human counts and journey conditions ignore it.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta

from core.tokens import HONEYPOT_LINK

SCANNER_CLICK_WINDOW = timedelta(seconds=10)  # a click this soon after delivery is a scanner
ALL_LINKS_WINDOW = timedelta(seconds=5)  # every link of a message clicked within this window

_PROXY_UA = (
    (re.compile(r"GoogleImageProxy", re.I), "google_image_proxy"),
    (re.compile(r"YahooMailProxy", re.I), "yahoo_mail_proxy"),
    (re.compile(r"ggpht\.com|via ggpht", re.I), "google_image_proxy"),
    (re.compile(r"Outlook-iOS-Android|OWA-ImageProxy|ms-office-image-proxy", re.I),
     "microsoft_image_proxy"),
)
_SCANNER_UA = re.compile(
    r"bot\b|crawler|spider|scanner|barracuda|mimecast|proofpoint|symantec|trend ?micro|"
    r"forcepoint|fireeye|cisco|ironport|sophos|safelinks|safe links|linkscan|urldefense|"
    r"headlesschrome|phantomjs|python-requests|python-urllib|aiohttp|httpx|go-http-client|"
    r"curl/|wget/|java/|okhttp|libwww|node-fetch|axios/|^$",
    re.I,
)
# Apple Mail Privacy Protection fetches images from Apple's network with a bare UA.
_APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
_BARE_MOZILLA = re.compile(r"^Mozilla/5\.0$")


def _apple_ip(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _APPLE_NETWORKS)


def classify(kind: str, user_agent: str, ip: str, *, occurred_at: datetime,
             sent_at: datetime | None, link_index: int | None = None,
             link_count: int = 0, recent_click_links: dict[int, datetime] | None = None
             ) -> tuple[bool, str]:
    """Return (machine, reason) for an open or click; other kinds are never machine."""
    if kind not in ("open", "click"):
        return False, ""
    ua = (user_agent or "").strip()
    for pattern, reason in _PROXY_UA:
        if pattern.search(ua):
            return True, reason
    if kind == "open" and (_BARE_MOZILLA.match(ua) or _apple_ip(ip)):
        return True, "apple_mail_privacy"
    if _SCANNER_UA.search(ua):
        return True, "scanner_user_agent"
    if kind != "click":
        return False, ""
    if link_index == HONEYPOT_LINK:
        return True, "honeypot_link"
    if _apple_ip(ip) and _BARE_MOZILLA.match(ua):
        return True, "apple_proxy"
    if sent_at is not None and timedelta(0) <= occurred_at - sent_at < SCANNER_CLICK_WINDOW:
        return True, "click_too_soon_after_delivery"
    if link_count >= 2 and recent_click_links is not None:
        window_start = occurred_at - ALL_LINKS_WINDOW
        clicked = {i for i, at in recent_click_links.items() if at >= window_start}
        clicked.add(link_index if link_index is not None else -1)
        if all(i in clicked for i in range(link_count)):
            return True, "clicked_every_link"
    return False, ""
