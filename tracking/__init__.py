"""Signed tracking tokens, the public /t and /u endpoints, event ingest and analytics."""
