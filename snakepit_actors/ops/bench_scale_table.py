"""The figures of ``snakepit-actors bench scale`` (``bench_scale``) and issue 20's target table.

Pure: what was measured (``PoolRun``, ``RawRun``, ``ScaleResults``), the targets it is held
to (``targets``) and how it is printed (``render``, ``as_json``). No process is started here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_NS = (16, 64, 256)
START_METHODS = ("forkserver", "spawn")
#: Roles ``uss_by_role`` sorts a pool's processes into.
ROLES = ("worker bridge", "Worker actor", "Starter actor", "control plane", "fork server")


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    """What ``run`` measures: pool sizes ``ns``, ``start_methods`` (one not supported by this
    ``PoolConfig`` is reported, not run), ``seconds`` per throughput measurement."""

    ns: tuple[int, ...] = DEFAULT_NS
    start_methods: tuple[str, ...] = START_METHODS
    seconds: float = 5.0
    probes: bool = True
    progress: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)


@dataclass(frozen=True, slots=True)
class PoolRun:
    """One pool of ``n`` workers started with ``start_method``. ``uss_mb``: role -> (processes,
    total MB); rates in requests per second; ``pinned``: raw gRPC to the same worker processes,
    one caller thread per worker."""

    n: int
    start_method: str
    startup_s: float
    processes: int
    uss_mb: dict[str, tuple[int, float]]
    tool_n: float
    tool_2n: float
    pinned: float
    close_s: float

    @property
    def uss_total_mb(self) -> float:
        return sum(total for _, total in self.uss_mb.values())

    def per_worker_mb(self, *roles: str) -> float:
        """USS of ``roles`` (all roles when none) divided by ``n``."""
        chosen = roles or tuple(self.uss_mb)
        return sum(self.uss_mb.get(role, (0, 0.0))[1] for role in chosen) / self.n

    def mean_mb(self, role: str) -> float:
        count, total = self.uss_mb.get(role, (0, 0.0))
        return total / count if count else 0.0


@dataclass(frozen=True, slots=True)
class RawRun:
    """``n`` bare servers: ``spawn`` (one process each, spawned at once) or ``fork`` (forked
    by one process that imported grpc). ``answered``: servers that answered a call."""

    n: int
    how: str
    listening_s: float
    uss_each_mb: float
    answered: int
    pinned: float = 0.0


@dataclass(slots=True)
class ScaleResults:
    pools: list[PoolRun] = field(default_factory=list)
    raws: list[RawRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def pool(self, n: int, method: str | None = None) -> PoolRun | None:
        return next((p for p in self.pools
                     if p.n == n and (method is None or p.start_method == method)), None)

    def raw(self, n: int, how: str) -> RawRun | None:
        return next((r for r in self.raws if r.n == n and r.how == how), None)


# --- the target table (pure) --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """``measured`` against ``bound`` (``op`` "<=" or ">="); ``ratio``: the bound is on
    measured / baseline. ``today``: the figure issue 20 started from."""

    figure: str
    today: str
    op: str
    bound: float
    unit: str
    measured: float | None = None
    baseline: float | None = None
    ratio: bool = False
    note: str = ""

    @property
    def value(self) -> float | None:
        if self.measured is None or (self.ratio and not self.baseline):
            return None
        return self.measured / self.baseline if self.ratio and self.baseline else self.measured

    @property
    def met(self) -> bool | None:
        value = self.value
        if value is None:
            return None
        return value <= self.bound if self.op == "<=" else value >= self.bound

    @property
    def target(self) -> str:
        return f"{self.op} {self.bound:g}{'x' if self.ratio else ' ' + self.unit}"


def _nearest(ns: Sequence[int], want: int) -> int | None:
    return min(ns, key=lambda n: (abs(n - want), -n)) if ns else None


def targets(results: ScaleResults) -> list[Target]:
    """Issue 20's target table filled from ``results`` (a figure with no run is "-")."""
    ns = sorted({p.n for p in results.pools})
    fork = [p for p in results.pools if p.start_method == "forkserver"]
    spawn = [p for p in results.pools if p.start_method == "spawn"]
    rows: list[Target] = []

    def fork_start(want: int, bound: float, today: str) -> Target:
        run = next((p for p in fork if p.n == want), None)
        raw = results.raw(want, "spawn")
        return Target(f"start-up, {want} workers, fork server", today, "<=", bound, "s",
                      run.startup_s if run else None, raw.listening_s if raw else None,
                      note="" if run else "no fork-server run of this size")

    rows.append(fork_start(64, 3.0, "- (spawn: ~9 s projected)"))
    rows.append(fork_start(256, 8.0, "- (spawn: ~35 s projected)"))
    n = _nearest([p.n for p in spawn], 48)
    run = next((p for p in spawn if p.n == n), None)
    raw = results.raw(n, "spawn") if n else None
    rows.append(Target(f"start-up, {n or 48} workers, spawn, vs raw concurrent spawn",
                       "2.0x at 48", "<=", 1.2, "s", run.startup_s if run else None,
                       raw.listening_s if raw else None, ratio=True))
    big_fork = max(fork, key=lambda p: p.n, default=None)
    rows.append(Target(
        f"USS per worker, all pool processes, fork server"
        f"{f' ({big_fork.n})' if big_fork else ''}", "39-40 MB", "<=", 15.0, "MB",
        big_fork.per_worker_mb() if big_fork else None,
        _spawn_twin_per_worker(results, big_fork)))
    biggest = max(results.pools, key=lambda p: (p.n, p.start_method == "forkserver"),
                  default=None)
    rows.append(Target(
        f"control-plane USS per worker (Starter + Worker actor)"
        f"{f' ({biggest.n})' if biggest else ''}", "21 MB", "<=", 8.0, "MB",
        biggest.per_worker_mb("Worker actor", "Starter actor") if biggest else None))
    n = _nearest(ns, 64)
    run = results.pool(n) if n else None
    rows.append(Target(f"10 ms tool, {n or 64} workers, {n or 64} callers, vs raw pinned",
                       "0.74x at 48", ">=", 0.9, "req/s", run.tool_n if run else None,
                       run.pinned if run else None, ratio=True))
    rows.append(Target(f"10 ms tool, {n or 64} workers, {2 * (n or 64)} callers, vs raw pinned",
                       "0.55x at 48/96", ">=", 0.85, "req/s", run.tool_2n if run else None,
                       run.pinned if run else None, ratio=True))
    n = max(ns, default=None)
    runs = [p for p in results.pools if p.n == n]
    rows.append(Target(f"close(), {n or 256} workers", "1.1 s at 128", "<=", 3.0, "s",
                       max(p.close_s for p in runs) if runs else None,
                       note="" if n == 256 else "target is for 256 workers"))
    return rows


def _spawn_twin_per_worker(results: ScaleResults, run: PoolRun | None) -> float | None:
    twin = results.pool(run.n, "spawn") if run else None
    return twin.per_worker_mb() if twin else None


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: ScaleResults) -> str:
    """The target table, then one line per pool run and per bare-server run, then notes."""
    rows = targets(results)
    width = max(len(r.figure) for r in rows)
    lines = [f"{'figure':<{width}}  {'measured':>9} {'baseline':>9} {'ratio':>6}  "
             f"{'target':<10} {'met':<4} today"]
    for r in rows:
        ratio = (f"{r.measured / r.baseline:.2f}x" if r.measured is not None and r.baseline
                 else "-")
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        lines.append(f"{r.figure:<{width}}  {_num(r.measured):>9} {_num(r.baseline):>9} "
                     f"{ratio:>6}  {r.target:<10} {met:<4} {r.today}"
                     + (f"  ({r.note})" if r.note else ""))
    lines += ["", "pools (USS in MB: mean per process of each role; rates in req/s)",
              f"{'N':>4} {'method':<10} {'start s':>7} {'procs':>5} {'USS MB':>8} "
              f"{'/worker':>7} {'bridge':>6} {'Worker':>6} {'Starter':>7} {'ctl':>5} "
              f"{'forksrv':>7} {'N callers':>9} {'2N':>7} {'pinned':>7} {'close s':>7}"]
    for p in results.pools:
        fork_server = p.uss_mb.get("fork server", (0, 0.0))
        lines.append(
            f"{p.n:>4} {p.start_method:<10} {p.startup_s:>7.2f} {p.processes:>5} "
            f"{p.uss_total_mb:>8.0f} {p.per_worker_mb():>7.1f} {p.mean_mb('worker bridge'):>6.1f}"
            f" {p.mean_mb('Worker actor'):>6.1f} {p.mean_mb('Starter actor'):>7.1f} "
            f"{p.mean_mb('control plane'):>5.1f} "
            f"{(fork_server[1] if fork_server[0] else 0.0):>7.1f} {p.tool_n:>9.0f} "
            f"{p.tool_2n:>7.0f} {p.pinned:>7.0f} {p.close_s:>7.2f}")
    if results.raws:
        lines += ["", "bare gRPC servers (spawn: one process each, all at once; fork: forked "
                      "by one process that imported grpc)",
                  f"{'N':>4} {'how':<6} {'listening s':>11} {'USS each MB':>11} "
                  f"{'answered':>8} {'pinned req/s':>12}"]
        for b in results.raws:
            lines.append(f"{b.n:>4} {b.how:<6} {b.listening_s:>11.2f} {b.uss_each_mb:>11.1f} "
                         f"{b.answered:>8} {(f'{b.pinned:.0f}' if b.pinned else '-'):>12}")
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines)


def as_json(results: ScaleResults) -> list[dict[str, Any]]:
    """The target table as data (``--json``), each run's detail beside it."""
    return [
        {"figure": r.figure, "measured": r.measured, "baseline": r.baseline,
         "value": r.value, "target": r.target, "met": r.met, "today": r.today, "note": r.note}
        for r in targets(results)
    ] + [{"pool": {**{k: getattr(p, k) for k in PoolRun.__slots__},
                   "uss_total_mb": p.uss_total_mb}} for p in results.pools] + [
        {"raw": {k: getattr(r, k) for k in RawRun.__slots__}} for r in results.raws
    ] + [{"note": note} for note in results.notes]
