"""gRPC servicers: proto <-> domain mapping and status codes, nothing more."""
