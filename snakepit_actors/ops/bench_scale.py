"""``snakepit-actors bench scale``: what a node of N workers costs and gives, beside bare gRPC.

For each N (16, 64 and 256 by default; ``--n 16,64``; ``--quick``: 16 only) and each start
method (``"forkserver"`` when ``PoolConfig`` has it, and ``"spawn"``), one pool of the
showcase adapter::

    Pool.start(N workers)  ─> start-up time, processes, USS by role (psutil)
    10 ms ``sleep``, N callers and 2N callers  ─> req/s, against raw gRPC on the pool's own
        worker processes with one pinned caller thread each (no router at all)
    close()  ─> time

and beside it, in the same run:

* *raw spawn*: N bare gRPC servers (``bench_raw_server``: one Python process each, spawned all
  at once): time until all listen, USS each, the 10 ms sleep with one pinned caller each;
* *fork probe*: one process that imported grpc forks N children, each starts its own server:
  time until all listen, USS each, and whether every one answered a call.

``render`` prints issue 20's target table (each figure, its baseline, its target) and the
detail of every run. Every measurement is bounded in count and in time; 256 workers belong in
the bench, never in CI.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from snakepit_actors.ops.bench_tools import Rate, per_slot, raw_slots, throughputs

if TYPE_CHECKING:
    from snakepit_actors.client.handle import Pool

DEFAULT_NS = (16, 64, 256)
START_METHODS = ("forkserver", "spawn")
#: Roles ``uss_by_role`` sorts a pool's processes into.
ROLES = ("worker bridge", "Worker actor", "Starter actor", "control plane", "fork server")
_SLEEP_S = 0.01


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


# --- measuring ----------------------------------------------------------------------------------

def role_of(cmdline: str, parent_cmdline: str) -> str:
    """The ``ROLES`` entry of a pool process, from its command line (or title) and its
    parent's: worker processes run the bridge (forked ones keep the fork server's command
    line), actors carry ``proctitle`` titles, the rest (admin, logger, registries, Pool,
    supervisors) is the control plane."""
    if "snakepit_actors.bridge.fork_server" in cmdline:
        return ("worker bridge" if "snakepit_actors.bridge.fork_server" in parent_cmdline
                else "fork server")
    if "snakepit_actors.bridge" in cmdline or "snakepit_actors.compat" in cmdline:
        return "worker bridge"
    if "snakepit-actors: Worker " in cmdline:
        return "Worker actor"
    if "snakepit-actors: Starter " in cmdline:
        return "Starter actor"
    return "control plane"


def pool_processes(pool: Pool) -> list[Any]:
    """The admin of ``pool``'s actor system and every process below it (actors, worker
    processes, a fork server), plus any process whose command line names its run id."""
    import psutil

    found: dict[int, Any] = {}
    with contextlib.suppress(psutil.Error):
        admin = psutil.Process(pool.admin_pid)
        found = {p.pid: p for p in (admin, *admin.children(recursive=True))}
    if pool.run_id:
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid not in found and pool.run_id in " ".join(proc.info["cmdline"] or ()):
                found[proc.pid] = proc
    return list(found.values())


def uss_by_role(procs: list[Any]) -> dict[str, tuple[int, float]]:
    """role -> (processes, total USS in MB); processes gone meanwhile are left out."""
    import psutil

    out: dict[str, tuple[int, float]] = {}
    for proc in procs:
        try:
            cmdline = " ".join(proc.cmdline())
            parent = proc.parent()
            parent_cmdline = " ".join(parent.cmdline()) if parent is not None else ""
            uss = proc.memory_full_info().uss / 2**20
        except psutil.Error:
            continue
        count, total = out.get(role := role_of(cmdline, parent_cmdline), (0, 0.0))
        out[role] = (count + 1, total + uss)
    return out


def supported_start_methods(wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the methods of ``wanted`` this ``PoolConfig`` accepts, a note for each it does not)."""
    from snakepit_actors.config import PoolConfig
    from snakepit_actors.errors import ConfigError

    ok, notes = [], []
    for method in wanted:
        if method == "spawn" and not has_start_method():
            ok.append(method)  # the only way this PoolConfig starts workers
            continue
        try:
            fields: dict[str, Any] = {"start_method": method}
            PoolConfig(**fields)
        except (TypeError, ConfigError) as exc:
            notes.append(f"start_method={method!r} not measured: this PoolConfig does not "
                         f"accept it ({type(exc).__name__})")
            continue
        ok.append(method)
    return ok, notes


def has_start_method() -> bool:
    """Whether this ``PoolConfig`` has a ``start_method`` field (the fork server)."""
    import dataclasses

    from snakepit_actors.config import PoolConfig

    return any(f.name == "start_method" for f in dataclasses.fields(PoolConfig))


def _budget(n: int, callers: int, seconds: float) -> int:
    return int(min(n, callers) / _SLEEP_S * seconds * 1.5) + callers


def measure_pool(n: int, method: str, o: ScaleOptions) -> PoolRun:
    """Start, measure and close one pool of ``n`` showcase workers."""
    from snakepit_actors.client.handle import Pool
    from snakepit_actors.config import PoolConfig

    fields: dict[str, Any] = {"start_method": method} if has_start_method() else {}
    cfg = PoolConfig(name=f"scale-{n}", pool_size=n, startup_timeout=max(60.0, n * 0.5),
                     queue_timeout=60.0, **fields)
    o.say(f"scale: {n} workers, {method}: starting ...")
    t0 = time.perf_counter()
    pool = Pool.start(cfg)
    try:
        startup_s = time.perf_counter() - t0
        procs = pool_processes(pool)
        o.say(f"scale: {n} workers, {method}: up in {startup_s:.2f} s, {len(procs)} processes;"
              " measuring ...")
        args = {"seconds": _SLEEP_S}
        with raw_slots(pool, "sleep", args) as slots:
            call = lambda: pool.execute("sleep", args)  # noqa: E731
            pinned, tool_n = throughputs([per_slot(slots), call], n, _budget(n, n, o.seconds),
                                         o.seconds, threads=[len(slots), n])
            (tool_2n,) = throughputs([call], 2 * n, _budget(n, 2 * n, o.seconds), o.seconds)
        uss = uss_by_role(pool_processes(pool))
    finally:
        t1 = time.perf_counter()
        pool.close()
        close_s = time.perf_counter() - t1
    return PoolRun(n, method, startup_s, len(procs), uss, tool_n.per_s, tool_2n.per_s,
                   pinned.per_s, close_s)


@contextlib.contextmanager
def bare_servers(n: int, fork: bool, timeout_s: float) -> Iterator[tuple[float, list[int],
                                                                         list[int]]]:
    """``n`` bare servers (spawned at once, or forked by one probe process): yields (seconds
    until all listened, their ports, their pids); every process is killed by pid after."""
    cmd = [sys.executable, "-m", "snakepit_actors.ops.bench_raw_server"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    starts = range(1) if fork else range(n)
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd + (["--fork", str(n)] if fork else []), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env) for _ in starts]
    ports: list[int] = []
    pids: list[int] = []
    try:
        last = _read_ports(procs, n, ports, pids, t0, timeout_s)
        yield last[1] - last[0], ports, pids
    finally:
        _stop(procs, pids)


def _read_ports(procs: list[subprocess.Popen[bytes]], n: int, ports: list[int],
                pids: list[int], t0: float, timeout_s: float) -> tuple[float, float]:
    """Read "T0 ..." and "PORT n pid" lines until ``n`` ports are known: (start, last)."""
    start, last = t0, t0
    with selectors.DefaultSelector() as sel:
        buffers: dict[int, bytes] = {}
        for proc in procs:
            assert proc.stdout is not None
            sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while len(ports) < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                lines = (buffers.get(key.fd, b"") + chunk).split(b"\n")
                buffers[key.fd] = lines.pop()
                for line in lines:
                    word = line.split()
                    if word[:1] == [b"T0"]:
                        start = float(word[1])
                    elif word[:1] == [b"PORT"]:
                        ports.append(int(word[1]))
                        pids.append(int(word[2]))
                        last = time.monotonic()
    if len(ports) < n:
        raise TimeoutError(f"only {len(ports)} of {n} bare gRPC servers listened within "
                           f"{timeout_s:g} s")
    return start, last


def _stop(procs: list[subprocess.Popen[bytes]], pids: list[int]) -> None:
    import psutil

    for proc in procs:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
    tracked = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            tracked.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(tracked, timeout=3)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()


def measure_bare(n: int, fork: bool, o: ScaleOptions) -> RawRun:
    """``n`` bare servers: time until all listen, USS each, calls answered; for spawned ones
    also the 10 ms sleep with one pinned caller thread each."""
    import grpc
    import psutil

    how = "fork" if fork else "spawn"
    o.say(f"scale: {n} bare gRPC servers, {how} ...")
    with bare_servers(n, fork, timeout_s=max(30.0, n * 0.5)) as (listening_s, ports, pids):
        uss = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                uss.append(psutil.Process(pid).memory_full_info().uss / 2**20)
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}",
                                          options=[("grpc.use_local_subchannel_pool", 1)])
                    for port in ports]
        try:
            calls = [_bare_call(ch.unary_unary(_raw_method()), str(_SLEEP_S).encode())
                     for ch in channels]
            answered = sum(1 for call in calls if _answers(call))
            pinned: Rate | None = None
            if not fork:
                (pinned,) = throughputs([per_slot(calls)], n, _budget(n, n, o.seconds),
                                        o.seconds)
        finally:
            for ch in channels:
                ch.close()
    return RawRun(n, how, listening_s, sum(uss) / len(uss) if uss else 0.0, answered,
                  pinned.per_s if pinned else 0.0)


def _raw_method() -> str:
    from snakepit_actors.ops.bench_raw_server import METHOD

    return METHOD


def _bare_call(method: Callable[..., Any], request: bytes) -> Callable[[], Any]:
    return lambda: method(request, timeout=10.0)


def _answers(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception:
        return False
    return True


def run(o: ScaleOptions) -> ScaleResults:
    """Every measurement ``o`` names, the bare servers of each N first (the same run)."""
    results = ScaleResults()
    methods, results.notes = supported_start_methods(o.start_methods)
    for n in o.ns:
        if o.probes:
            results.raws.append(measure_bare(n, fork=False, o=o))
            results.raws.append(measure_bare(n, fork=True, o=o))
        for method in methods:
            results.pools.append(measure_pool(n, method, o))
    results.notes.append(f"machine: {os.cpu_count()} cores, load average "
                         f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    return results
