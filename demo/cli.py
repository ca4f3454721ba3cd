"""`flask demo seed` and `flask dev`: the embedded-defaults demo that `make run` starts."""

from __future__ import annotations

import os
import signal
import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from accounts import lists, profile
from accounts import services as accounts
from accounts.models import Partner, User
from campaigns.models import Contact
from core import migrate
from core.config import ROOT
from core.db import db
from demo.supervisor import Supervisor
from journeys import services as journeys
from journeys.cli import import_starters
from journeys.models import Journey

DEMO_PASSWORD = "lastmile-demo"  # noqa: S105 (demo data, printed on purpose)
demo_cli = AppGroup("demo", help="Demo data for trying Lastmile.")


def seed_demo() -> list[tuple[str, str, str]]:
    """Create the demo brand users, partners, templates, journeys and contacts; return logins.

    Idempotent: existing users keep their data and get a fresh API token.
    """
    partners = {}
    for kind, names in (("tier", ("Gold", "Silver")), ("region", ("North", "South"))):
        for listed in names:
            lists.add_name(kind, listed)
    for name, tier, region, site in (
        ("Northside Advisors", "gold", "north", "https://northside.example"),
        ("Harbor Financial", "silver", "south", "https://harbor.example"),
    ):
        partner = db.session.scalar(select(Partner).where(Partner.name == name))
        if partner is None:
            partner = accounts.create_partner(name=name, tier=tier, region=region, website=site,
                                              phone="555-0100", address=f"1 {region.title()} St")
        partners[name] = partner

    logins = []
    for email, role, partner_name in (
        ("admin@brand.example", "brand_admin", None),
        ("marketer@brand.example", "brand_marketer", None),
        ("ann@northside.example", "partner_admin", "Northside Advisors"),
        ("ned@northside.example", "partner_user", "Northside Advisors"),
        ("hal@harbor.example", "partner_user", "Harbor Financial"),
    ):
        user = db.session.scalar(select(User).where(User.email == email))
        partner_id = partners[partner_name].id if partner_name else None
        if user is None:
            user, token = accounts.create_user(email, role, partner_id, password=DEMO_PASSWORD)
        else:
            token = accounts.issue_token(user.id)
        logins.append((email, role, token))

    ids = import_starters(publish=True)
    if not db.session.scalar(select(Journey).limit(1)):
        welcome = journeys.create_journey(
            name="Welcome series", category="Onboarding",
            description="Greets a new client, follows up three days later if they engaged.",
            steps=[{"template_id": ids["welcome"], "delay_hours": 0, "when": "always"},
                   {"template_id": ids["meeting_followup"], "delay_hours": 72, "when": "opened"}],
        )
        journeys.publish_journey(welcome.id)
        thanks = journeys.create_journey(
            name="Client appreciation", category="Relationship", tiers=["gold"],
            description="A one-off thank-you note; gold partners can quick-send it.",
            quick_send=True, requires_approval=False,
            steps=[{"template_id": ids["thank_you"], "delay_hours": 0, "when": "always"}],
        )
        journeys.publish_journey(thanks.id)
        offer = journeys.create_journey(
            name="Seasonal offer", category="Promotion", requires_approval=True,
            description="A promotion with a brand-approved offer; launches after brand review.",
            steps=[{"template_id": ids["offer"], "delay_hours": 0, "when": "always"}],
        )
        journeys.publish_journey(offer.id)

    # One partner with a full profile (its emails are signed by its advisor), one without.
    northside = partners["Northside Advisors"]
    if northside.advisor_name is None:
        brand_admin = db.session.scalar(select(User).where(User.email == "admin@brand.example"))
        photo = (ROOT / "static" / "sample" / "advisor-photo.png").read_bytes()
        profile.update_profile(northside.id, {
            "advisor_name": "Ann Northcott", "title": "Financial Advisor",
            "signature": "Warm regards,\nAnn",
            "disclosures": "Securities offered through Example Securities LLC, member "
                           "FINRA/SIPC. Northside Advisors is independent of Example Securities.",
        }, brand_admin, current_app.config, images={"photo": photo})

    for partner in partners.values():
        if db.session.scalar(select(Contact).where(Contact.partner_id == partner.id).limit(1)):
            continue
        domain = partner.website.split("//")[1]
        for first, last in (("Alex", "Rivera"), ("Blair", "Chen"), ("Casey", "Okafor"),
                            ("Dana", "Novak"), ("Eli", "Moreau")):
            db.session.add(Contact(partner_id=partner.id, email=f"{first.lower()}@client.{domain}",
                                   first_name=first, last_name=last, consent=True, attributes={}))
        db.session.commit()
    return logins


@demo_cli.command("seed")
def seed_command() -> None:
    """Create demo data (idempotent) and print logins with fresh API tokens."""
    for email, role, token in seed_demo():
        click.echo(f"{role:15} {email:28} password {DEMO_PASSWORD}  token {token}")


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-seed", is_flag=True, help="Do not create demo data.")
def dev_command(host: str, port: int, no_seed: bool) -> None:
    """Migrate, seed a demo, and run the web app, a worker and a local SMTP catcher."""
    migrate.upgrade()
    logins = [] if no_seed else seed_demo()
    env = dict(os.environ)
    env.setdefault("PUBLIC_BASE_URL", f"http://{host}:{port}")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    commands: dict[str, list[str]] = {}
    if current_app.config["DELIVERY_BACKEND"] == "smtp" and current_app.config["SMTP_HOST"] in (
            "127.0.0.1", "localhost"):
        commands["smtp-catcher"] = [*flask, "smtp-catcher", "--port",
                                    str(current_app.config["SMTP_PORT"])]
    commands["worker"] = [*flask, "worker"]
    if current_app.config["REDIS_URL"]:
        # With Redis the scheduler feeds the RQ queue, and tracking hits are buffered in a
        # stream that the drainer moves to the DB; without it the worker does both jobs.
        commands["scheduler"] = [*flask, "scheduler"]
        commands["tracking-drain"] = [*flask, "tracking-drain"]
    commands["web"] = [*flask, "run", "--host", host, "--port", str(port), "--no-reload"]
    # A component that exits (a crash, an outage it gave up on) is started again.
    supervisor = Supervisor(commands, env, say=lambda line: click.echo(line, err=True))
    supervisor.start()
    time.sleep(1.5)
    url = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Lastmile is running at {url}")
    click.echo(f"  database: {current_app.config['SQLALCHEMY_DATABASE_URI']}")
    redis_url = current_app.config["REDIS_URL"]
    click.echo(f"  queue: {'Redis ' + redis_url if redis_url else 'embedded (no Redis)'}")
    click.echo(f"  outbox (caught mail): {url}/outbox")
    for email, role, token in logins:
        click.echo(f"  {role:15} {email:28} password {DEMO_PASSWORD}")
        click.echo(f"  {'':15} API: curl -H 'Authorization: Bearer {token}' {url}/api/me")
    click.echo("Press Ctrl-C to stop.")
    stopping = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_args: stopping.update(flag=True))
    try:
        supervisor.run(lambda: stopping["flag"])
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()


def init_app(app: Flask) -> None:
    """Register the demo commands."""
    app.cli.add_command(demo_cli)
    app.cli.add_command(dev_command)
