"""Contacts, suppression, campaigns, members, approvals, quick send, the sends ledger."""
