"""Sharing, not copying, what forked actors need: the per-worker control plane stays small.

    launcher ──fork──> admin ──fork──> PoolRoot ──fork──> WorkerSupervisor ──fork──> Starter_i
      (freeze, unfreeze)                 warm_for_workers()   freeze_heap()     freeze_heap()
                                                                                  └─fork─> Worker_i

Every actor is a fork of its parent, so the pages of its parent's heap are shared until
written. Two things write them and make every Starter and Worker pay for its own copy
(measured, 16 workers: Starter 8.5 MB, Worker actor 24 MB of USS each):

* **Imports after the fork.** A Worker actor imported grpc and the stubs on its first message:
  12 MB of objects of its own. ``warm_for_workers`` imports them once in the PoolRoot, before
  it forks the tree; the Workers then share them. It creates no gRPC object: grpc starts no
  thread and no core state until a channel or server exists, so forking after the import is
  the fork-server probe of issue 20 (a forked child builds its own channel; measured: every
  one answered), and the rule "grpc is never *used* in a process that forks actors" holds.
* **The garbage collector.** A full collection in a child writes the GC header of every
  object it inherited: 7 MB more per Worker. ``gc.freeze()`` before a fork moves every
  object to the permanent generation, which collections never visit. ``freeze_heap`` is
  cheap (it splices lists, touching no object), so supervisors call it before each fork.

``system.start_actor_system`` does the same for the launcher's ``ActorSystem()`` (which forks
the admin): it freezes the launcher's heap for the fork and unfreezes it afterwards, so the
user's process collects as before and only the actor system skips it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib

#: What every Starter and Worker actor imports: loaded in the PoolRoot before it forks them.
WORKER_MODULES = (
    "snakepit_actors.tree.starter",
    "snakepit_actors.tree.worker",
    "snakepit_actors.tree.worker_link",
    "snakepit_actors.tree.worker_errors",
    "snakepit_actors.tree.beat_line",
    "snakepit_actors.tree.worker_data_path",
    "snakepit_actors.tree.call_threads",
    "snakepit_actors.tree.streaming",
    "snakepit_actors.tree.process_swap",
    "snakepit_actors.tree.log_capture",
)


def warm_for_workers(protocol: str = "snakepit_actors") -> None:
    """Import what the Worker actors below use (their modules, grpc and the stubs of
    ``protocol``), then collect and freeze this process's heap. Call in a process that forks
    the Worker actors' ancestors, before it does. Creates no gRPC object. Never raises: a
    failed import is the Worker's to report, at its own import."""
    for name in WORKER_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError, ValueError):
        import grpc  # noqa: F401  (imported only: no channel, no thread, no core state)

        from snakepit_actors.protocols import wire_for

        wire_for(protocol)
    gc.collect()
    gc.freeze()


def freeze_heap() -> None:
    """Move every object of this process to the permanent generation, so that the children
    it forks next never copy their pages by collecting them. O(1): touches no object."""
    gc.freeze()
