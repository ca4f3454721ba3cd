"""HTTP routes of the tracking package."""

from flask import Blueprint

bp = Blueprint("tracking", __name__)
