"""Delivery backends behind one small interface: smtp, ses (boto3 sesv2), outbox (development)."""
