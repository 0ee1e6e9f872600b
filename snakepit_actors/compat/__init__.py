"""Running Snakepit 0.13.0's own Python workers in the pool (``PoolConfig(protocol="snakepit")``).

Runs inside the worker process, next to Snakepit's code: ``shim`` starts their
``grpc_server.py`` on loopback and turns its ready file into the pool's ready line;
``host_service`` answers what their worker calls back on the host. See docs/snakepit-compat.md.
"""
