"""Jindou workers: dispatch consumers, fan-out, conversations and webhooks."""
