"""Lastmile application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask

from core import config as core_config


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the Lastmile Flask application."""
    instance = os.environ.get("LASTMILE_INSTANCE") or os.path.join(core_config.ROOT, "instance")
    app = Flask(__name__, instance_path=instance, template_folder="templates")
    app.config.update(core_config.load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
        if "DATABASE_URL" in test_config:
            app.config["SQLALCHEMY_DATABASE_URI"] = test_config["DATABASE_URL"]
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from accounts import auth
    from accounts import cli as accounts_cli
    from accounts import routes as accounts_routes
    from campaigns import cli as campaigns_cli
    from campaigns import routes as campaigns_routes
    from core import cli as core_cli
    from core import errors
    from core.db import db
    from delivery import cli as delivery_cli
    from journeys import cli as journeys_cli
    from journeys import routes as journeys_routes
    from tracking import cli as tracking_cli
    from tracking import routes as tracking_routes
    from web import routes as web_routes

    db.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    for blueprint in (
        accounts_routes.bp,
        journeys_routes.bp,
        campaigns_routes.bp,
        tracking_routes.bp,
        web_routes.bp,
        __import__("web.apidoc", fromlist=["bp"]).bp,
    ):
        app.register_blueprint(blueprint)
    for module in (core_cli, accounts_cli, journeys_cli, campaigns_cli, delivery_cli, tracking_cli):
        module.init_app(app)
    # Open and click hits skip Flask's request machinery: they are the hottest requests.
    from tracking import wsgi as tracking_wsgi

    tracking_wsgi.wrap(app)
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops:
        # Behind a load balancer the client is in X-Forwarded-For; trust exactly `hops` of them.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app
