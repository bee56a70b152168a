"""Generated protobuf and gRPC stubs; see scripts/generate_protos.py."""
