"""Generated gRPC stubs (checked in; regenerate with ``python scripts/gen_proto.py``)."""
