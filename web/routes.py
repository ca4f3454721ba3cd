"""HTTP routes of the web package."""

from flask import Blueprint

bp = Blueprint("web", __name__)
