"""gRPC layer: servicers, proto conversion, error mapping and the server itself."""
