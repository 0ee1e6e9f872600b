"""Pure cores: the pool's decisions as plain state (no thespian, no grpc, no clock of their own).

Each takes ``now`` and its inputs explicitly and returns small decision records; the actors of
``snakepit_actors.tree`` execute them. Unit tests drive them directly, with hypothesis."""
