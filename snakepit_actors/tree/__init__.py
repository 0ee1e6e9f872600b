"""The actor tree of one pool (PoolRoot, Pool, WorkerSupervisor, Starter, Worker, the
registries, SessionStore, Recycler, LauncherWatch): one actor per module, named like its box, plus
the host-side process control the Worker uses. Thin shells around ``snakepit_actors.core``."""
