"""Lastmile application factory: the one place every layer is wired together."""

from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

# Importing each package's models fills db.metadata with the whole schema (Alembic, tests).
import accounts.models  # noqa: F401
import campaigns.models  # noqa: F401
import journeys.models  # noqa: F401
import tracking.models  # noqa: F401
from accounts import auth
from accounts import cli as accounts_cli
from accounts import routes as accounts_routes
from campaigns import cli as campaigns_cli
from campaigns import network_routes
from campaigns import routes as campaigns_routes
from campaigns.erasure import ERASURE_EXTENSION
from campaigns.ledger import ENGAGEMENT_EXTENSION
from core import cli as core_cli
from core import config as core_config
from core import errors, i18n, validate
from core.db import db
from delivery import cli as delivery_cli
from demo import cli as demo_cli
from journeys import cli as journeys_cli
from journeys import routes as journeys_routes
from tracking import cli as tracking_cli
from tracking import routes as tracking_routes
from tracking import wsgi as tracking_wsgi
from tracking.analytics import human_engagement
from tracking.services import forget_sends
from web import apidoc
from web import routes as web_routes

BLUEPRINTS = (
    accounts_routes.bp,
    journeys_routes.bp,
    campaigns_routes.bp,
    network_routes.bp,
    tracking_routes.bp,
    web_routes.bp,
    apidoc.bp,
)
CLI_MODULES = (core_cli, accounts_cli, journeys_cli, campaigns_cli, delivery_cli, tracking_cli,
               demo_cli)


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the Lastmile Flask application."""
    instance = os.environ.get("LASTMILE_INSTANCE") or os.path.join(core_config.ROOT, "instance")
    app = Flask(__name__, instance_path=instance, template_folder="templates")
    app.config.update(core_config.load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
        if "DATABASE_URL" in test_config:
            app.config["SQLALCHEMY_DATABASE_URI"] = test_config["DATABASE_URL"]
        if "PUBLIC_BASE_URL" in test_config:
            app.config.update({**core_config.cookie_settings(test_config["PUBLIC_BASE_URL"]),
                               **{k: v for k, v in test_config.items()
                                  if k.startswith("SESSION_COOKIE_")}})
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)

    validate.init_app(app)
    db.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    auth.init_app(app)
    # Journey conditions in the ledger read the engagement tracking records (see ledger).
    app.extensions[ENGAGEMENT_EXTENSION] = human_engagement
    # Erasing a contact also strips it from what tracking recorded (see campaigns.erasure).
    app.extensions[ERASURE_EXTENSION] = [forget_sends]
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    for module in CLI_MODULES:
        module.init_app(app)
    # Open and click hits skip Flask's request machinery: they are the hottest requests.
    tracking_wsgi.wrap(app)
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops:
        # Behind a load balancer the client is in X-Forwarded-For; trust exactly `hops` of them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app


def create_server_app() -> Flask:
    """Build the app for a WSGI server: `gunicorn 'app:create_server_app()'`."""
    return create_app()
