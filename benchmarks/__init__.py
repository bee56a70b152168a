"""Benchmarks of a real `queue-service serve` subprocess against the database's own floor.

Every figure comes with its floor, measured in the same run: the same SQL statements in the
same transactions, issued directly with psycopg2 or sqlite3 (no gRPC, no service layer).
Run `python -m benchmarks --help`.
"""
