"""Micro-benchmark: hand-built MIME (delivery.mime) against EmailMessage.as_bytes().

Run: python bench/mime.py [iterations]. Prints microseconds per message for a ~45 kB HTML email.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from delivery.mime import build_message  # noqa: E402

ROW = (
    "<tr><td style='padding:8px;color:#333;font-family:Arial'>Zoë's offer {i}: "
    "<a href='https://acme.example/o/{i}'>details</a></td></tr>\n"
)
HTML = "<html><body><table>" + "".join(ROW.format(i=i) for i in range(360)) + "</table></body>"
TEXT = "".join(f"Zoë's offer {i}: https://acme.example/o/{i}\n" for i in range(360))
SUBJECT = "Ihre persönliche Einladung zum Frühjahrs-Review"


ASCII_HTML = HTML.replace("Zoë", "Zoe")
ASCII_TEXT = TEXT.replace("Zoë", "Zoe")


def hand_built(i: int, html: str = HTML, text: str = TEXT) -> bytes:
    return build_message(
        message_id=f"{i}.bench@lastmile.test",
        from_name="Acme Financial",
        from_email="news@acme.example",
        reply_to="agent@partner.example",
        reply_to_name="Pat Partner",
        to=f"user{i}@example.com",
        subject=SUBJECT,
        html=html,
        text=text,
        list_unsubscribe_url=f"https://lastmile.test/u/token-{i}",
        list_unsubscribe_mailto="unsubscribe@acme.example",
        send_id=i,
    )


def email_message(i: int) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{i}.bench@lastmile.test>"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["From"] = "Acme Financial <news@acme.example>"
    msg["Reply-To"] = "Pat Partner <agent@partner.example>"
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = SUBJECT
    msg["List-Unsubscribe"] = (
        f"<https://lastmile.test/u/token-{i}>, <mailto:unsubscribe@acme.example>"
    )
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Lastmile-Send-Id"] = str(i)
    msg.set_content(TEXT, cte="quoted-printable")
    msg.add_alternative(HTML, subtype="html", cte="quoted-printable")
    return msg.as_bytes()


def measure(build, iterations: int) -> tuple[float, int]:
    size = len(build(0))
    start = time.perf_counter()
    for i in range(iterations):
        build(i)
    return (time.perf_counter() - start) / iterations * 1e6, size


def main() -> None:
    """Print per-message build time for both builders."""
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    fast, fast_size = measure(hand_built, iterations)
    ascii_fast, ascii_size = measure(lambda i: hand_built(i, ASCII_HTML, ASCII_TEXT), iterations)
    slow, slow_size = measure(email_message, max(20, iterations // 20))
    print(f"build_message, ASCII (7bit):   {ascii_fast:8.1f} us/message ({ascii_size} bytes)")
    print(f"build_message, non-ASCII (QP): {fast:8.1f} us/message ({fast_size} bytes)")
    print(f"EmailMessage.as_bytes() (QP):  {slow:8.1f} us/message ({slow_size} bytes)")
    print(f"speed-up vs EmailMessage: {slow / ascii_fast:.0f}x (ASCII), {slow / fast:.0f}x (QP)")


if __name__ == "__main__":
    main()
