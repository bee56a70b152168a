"""Alerts to operators: what an alert is, the email channel, and its durable outbox."""
