"""Job lifecycle, retry policy and maintenance logic; knows nothing of gRPC or SQL."""
