"""Brand-authored templates (MJML + slot schema, immutable versions), journeys and the catalog."""
