"""Tracking for jobs run by other queue systems; each integration is behind its own extra."""
