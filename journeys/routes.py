"""HTTP routes of the journeys package."""

from flask import Blueprint

bp = Blueprint("journeys", __name__)
