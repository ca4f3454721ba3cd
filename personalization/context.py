"""The non-slot values templates see: the brand from config, and sample data for previews."""

from __future__ import annotations

import copy
from collections.abc import Mapping

# A preview without a real recipient shows these placeholders, never a real person's data.
SAMPLE_CONTACT = {"email": "alex.sample@example.com", "first_name": "Alex", "last_name": "Sample",
                  "attributes": {}}
# The sample partner fills every `partner.*` field, so a brand previewing a template sees where
# each profile field lands (the images are served from the app's static folder).
SAMPLE_PARTNER = {"name": "Sample Partner Co", "tier": "gold", "region": "north",
                  "display_name": "Sample Partner Co", "advisor_name": "Jordan Sample",
                  "title": "Senior Financial Advisor",
                  "photo_url": "/static/sample/advisor-photo.png",
                  "logo_url": "/static/sample/partner-logo.png",
                  "signature": "Warm regards,\nJordan",
                  "address": "1 Main Street, Springfield", "phone": "555-0100",
                  "website": "https://partner.example.com",
                  "disclosures": "Sample Partner Co is an independent firm. This sample text shows "
                                 "where the partner's required disclosures appear."}


def brand_context(config: Mapping) -> dict:
    """Return the `brand.*` fields templates see, from the app config."""
    return {"name": str(config.get("BRAND_NAME", "")),
            "from_email": str(config.get("BRAND_FROM_EMAIL", ""))}


def sample_contact() -> dict:
    """Return a fresh copy of the preview contact (callers may fill in fields)."""
    return copy.deepcopy(SAMPLE_CONTACT)
