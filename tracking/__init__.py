"""The public /t and /u endpoints, event ingest, bot classification, SES webhooks, analytics."""
