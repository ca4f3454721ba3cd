"""Configuration read from environment variables, with embedded defaults for `make run`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every setting: (environment variable, default, help). README's configuration table
# is generated from this list (`flask --app app config-table`), so the two never disagree.
SETTINGS: list[tuple[str, str | None, str]] = [
    ("DATABASE_URL", None, "SQLAlchemy URL; default is a SQLite file under instance/"),
    ("REDIS_URL", "", "Redis for the RQ queue; empty means the embedded in-process queue"),
    ("SECRET_KEY", None, "Signs sessions and tracking tokens; required in production"),
    ("DELIVERY_BACKEND", "smtp", "smtp, ses or outbox"),
    ("SMTP_HOST", "127.0.0.1", "SMTP server host"),
    ("SMTP_PORT", "8025", "SMTP server port (make run starts a catcher here)"),
    ("SMTP_USERNAME", "", "SMTP auth user (optional)"),
    ("SMTP_PASSWORD", "", "SMTP auth password (optional)"),
    ("SMTP_SECURITY", "none", "none, starttls or tls"),
    ("SES_REGION", "us-east-1", "AWS region for SES"),
    ("SES_ENDPOINT_URL", "", "Override the SES endpoint (tests point it at moto)"),
    ("SES_CONFIGURATION_SET", "", "SES configuration set for event publishing"),
    ("PUBLIC_BASE_URL", "http://127.0.0.1:5000", "Base URL recipients reach for tracking"),
    ("OUTBOX_DIR", None, "Where the outbox backend and the SMTP catcher store .eml files"),
    ("BRAND_NAME", "Acme Financial", "The brand this deployment serves"),
    ("BRAND_FROM_EMAIL", "news@acme.example", "The brand's sending address"),
    ("RATE_LIMIT_GLOBAL", "0", "Max messages per second for all partners (0 = unlimited)"),
    ("RATE_LIMIT_PARTNER", "0", "Max messages per second per partner (0 = unlimited)"),
    ("SNS_TOPIC_ARNS", "", "Comma-separated SNS topic ARNs accepted by /webhooks/ses"),
    ("SMTP_TIMEOUT", "30", "Seconds before an SMTP connection attempt or command gives up"),
    ("SEND_LEASE_SECONDS", "60", "How long a worker's claim on a batch of sends lasts without "
     "its heartbeat: a killed worker's mail is retried after this long"),
    ("PROXY_FIX_HOPS", "0", "Proxies in front of the app whose X-Forwarded-* headers to trust "
     "(client IPs for sign-in throttling and bot classification)"),
    # Conversions (tracking/conversions.py).
    ("CLICK_ID_PARAM", "lm_click", "Query parameter a click's id is appended to the destination "
     "URL as, for the brand's site to report conversions with; off: clean URLs everywhere (one "
     "link stays clean when its URL carries <param>=off)"),
    ("CONVERSION_CURRENCY", "USD", "ISO 4217 currency conversion values are reported in"),
    # Partner profiles (accounts/profile.py) and their uploaded images (accounts/media.py).
    ("BRAND_IMAGE_DOMAINS", "", "Comma-separated domains (subdomains included) a partner's "
     "profile photo and logo may be linked from, https only; images uploaded in Lastmile are "
     "always allowed"),
    ("MEDIA_DIR", None, "Where uploaded profile images are stored when MEDIA_S3_BUCKET is empty "
     "(served at /media/)"),
    ("MEDIA_S3_BUCKET", "", "S3-compatible bucket for uploaded profile images (empty: MEDIA_DIR)"),
    ("MEDIA_S3_REGION", "us-east-1", "Region of MEDIA_S3_BUCKET"),
    ("MEDIA_S3_ENDPOINT_URL", "", "Override the S3 endpoint (MinIO, R2; tests point it at moto)"),
    ("MEDIA_S3_ACL", "", "Canned ACL for uploaded images, e.g. public-read (empty: the bucket's "
     "policy makes them readable)"),
    ("MEDIA_PUBLIC_URL", "", "Public base URL of uploaded images (default: PUBLIC_BASE_URL/media, "
     "or the bucket's URL with MEDIA_S3_BUCKET)"),
]


def load_config(instance_path: str) -> dict:
    """Return the app config from the environment, filling embedded defaults."""
    cfg: dict = {}
    for name, default, _help in SETTINGS:
        value = os.environ.get(name)
        cfg[name] = value if value not in (None, "") else default
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{Path(instance_path) / 'lastmile.db'}"
    if not cfg["OUTBOX_DIR"]:
        cfg["OUTBOX_DIR"] = str(Path(instance_path) / "outbox")
    if not cfg["MEDIA_DIR"]:
        cfg["MEDIA_DIR"] = str(Path(instance_path) / "media")
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _instance_secret(Path(instance_path))
    cfg["SQLALCHEMY_DATABASE_URI"] = cfg["DATABASE_URL"]
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
    cfg.update(cookie_settings(cfg["PUBLIC_BASE_URL"]))
    cfg["MAX_CONTENT_LENGTH"] = 60 * 1024 * 1024
    return cfg


def cookie_settings(public_base_url: str) -> dict:
    """Return the session cookie flags: never read by scripts, Lax, Secure behind https."""
    return {"SESSION_COOKIE_HTTPONLY": True, "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": str(public_base_url).lower().startswith("https://")}


def _instance_secret(instance: Path) -> str:
    """Keep a random development secret in instance/ so restarts keep sessions and tokens valid."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
