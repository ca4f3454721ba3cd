"""HTTP routes of the campaigns package."""

from flask import Blueprint

bp = Blueprint("campaigns", __name__)
