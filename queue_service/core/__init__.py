"""Job lifecycle, retry policy and the sweep; knows nothing of gRPC or SQL.

The design note on the sweep, leadership and scheduling is at the head of ``sweep/__init__.py``.
"""
