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
from typing import TYPE_CHECKING, Any

from snakepit_actors.ops.bench_scale_table import (
    PoolRun,
    RawRun,
    ScaleOptions,
    ScaleResults,
)
from snakepit_actors.ops.bench_tools import Rate, per_slot, raw_slots, throughputs

_SLEEP_S = 0.01

if TYPE_CHECKING:
    from snakepit_actors.client.handle import Pool

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


def measure_pool_apart(n: int, method: str, o: ScaleOptions) -> PoolRun:
    """``measure_pool`` in a fresh Python process, as a program starting its pool would be.

    This process has used gRPC by then (the bare servers' calls, an earlier pool's direct
    path); every actor process forks from the launching one and inherits that state, which
    slows each fork (measured: 256 workers started in 7.5 s from a fresh process, 8.9 s after
    one gRPC call, 11.8 s inside the bench)."""
    import dataclasses
    import json

    cmd = [sys.executable, "-m", "snakepit_actors.ops.bench_scale", str(n), method,
           str(o.seconds)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout is not None and child.stderr is not None
        other: list[str] = []
        for line in child.stderr:
            if line.startswith("scale: "):
                o.say(line.rstrip("\n"))
            else:
                other = [*other[-20:], line]
        out, code = child.stdout.read(), child.wait()
    if code != 0 or not out.strip():
        raise RuntimeError(f"measuring {n} workers ({method}) failed: exit code {code}\n"
                           + "".join(other))
    fields = json.loads(out)
    fields["uss_mb"] = {role: tuple(v) for role, v in fields["uss_mb"].items()}
    return PoolRun(**{f.name: fields[f.name] for f in dataclasses.fields(PoolRun)})


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
            results.pools.append(measure_pool_apart(n, method, o))
    results.notes.append(f"machine: {os.cpu_count()} cores, load average "
                         f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    return results


def _measure_pool_here(argv: Sequence[str]) -> int:
    """``python -m snakepit_actors.ops.bench_scale N METHOD SECONDS``: one ``measure_pool``,
    its ``PoolRun`` as JSON on stdout, progress on stderr."""
    import dataclasses
    import json

    n, method, seconds = int(argv[0]), argv[1], float(argv[2])
    o = ScaleOptions(ns=(n,), start_methods=(method,), seconds=seconds,
                     progress=lambda text: print(text, file=sys.stderr, flush=True))
    print(json.dumps(dataclasses.asdict(measure_pool(n, method, o))))
    return 0


if __name__ == "__main__":
    sys.exit(_measure_pool_here(sys.argv[1:]))
