"""The client side: the ``Pool`` handle plain Python uses (sync and asyncio), its direct data path
(leases and gRPC calls from the caller's thread), sessions and host tools."""
