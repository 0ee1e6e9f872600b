"""How worker processes start (``PoolConfig.start_method``) and what makes a choice invalid.

    "spawn"       a fresh interpreter per worker (``tree/processes.py``)
    "forkserver"  forked from one template process per pool run that imported the bridge, grpc,
                  the adapter's module and ``preload`` (``tree/fork_server.py``; Linux only)

See docs/scaling.md for what each costs.
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import Any, Literal

from snakepit_actors.config_hints import CLOSE_ENOUGH

__all__ = ["DEFAULT_START_METHOD", "START_METHODS", "StartMethod", "start_method_problems"]

StartMethod = Literal["spawn", "forkserver"]
START_METHODS: tuple[str, ...] = ("spawn", "forkserver")
#: "forkserver" on Linux (64 worker processes start 2-4.6x as fast, each holds less than half
#: the private memory: docs/scaling.md), "spawn" elsewhere (the fork server needs
#: Linux's pidfds and PR_SET_PDEATHSIG).
DEFAULT_START_METHOD: StartMethod = "forkserver" if sys.platform.startswith("linux") else "spawn"
_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def start_method_problems(start_method: Any, preload: Any, protocol: Any,
                          platform: str = sys.platform) -> list[str]:
    """What is wrong with ``start_method`` and ``preload`` (each as 'field must ..., got v').

    Args:
        start_method: the value given.
        preload: the value given (a tuple of module names).
        protocol: the pool's protocol (only this project's bridge is forked: workers of
            protocol "snakepit" are spawned whatever the start method, so ``preload`` is
            refused for them).
        platform: ``sys.platform`` (the fork server needs Linux).
    """
    if start_method not in START_METHODS:
        close = difflib.get_close_matches(str(start_method), START_METHODS, n=1,
                                          cutoff=CLOSE_ENOUGH)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [f"start_method must be 'spawn' or 'forkserver', got {start_method!r}{hint}"]
    p: list[str] = []
    if not (isinstance(preload, tuple)
            and all(isinstance(m, str) and _MODULE_RE.match(m) for m in preload)):
        p.append("preload must list module names, e.g. ['numpy', 'mypkg.models'], got "
                 f"{preload!r}")
    if start_method == "spawn":
        if preload:
            p.append("preload is for start_method='forkserver' (spawned workers import what "
                     f"they need themselves): set start_method='forkserver', got {preload!r}")
        return p
    if not platform.startswith("linux"):
        p.append(f"start_method='forkserver' needs Linux (pidfds, PR_SET_PDEATHSIG), this is "
                 f"{platform!r}: use start_method='spawn', got 'forkserver'")
    if protocol != "snakepit_actors" and preload:
        p.append("preload needs workers forked from a template, and protocol 'snakepit' "
                 f"workers are always spawned: remove preload, got {preload!r}")
    return p
