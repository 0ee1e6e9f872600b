"""``snakepit-actors bench --scenario message``: the message API (``Execute`` to the Pool actor)
against the direct path and raw gRPC, from the same run, and what each request costs in CPU.

    embedding actor  --Execute / ExecuteBatch-->  Pool  --forwarded-->  DataPlane --gRPC--> ...
    Pool handle, data_path="actor" (its gateway thread sends ExecuteBatch); and the same with
        data_plane=False (Pool -> Worker actors, prefetch 2), the path before the DataPlane
    Pool handle, data_path="direct" (leases; gRPC from the caller's thread)
    raw gRPC: a fair router over the worker slots (64 threads), and one thread per slot

Figures: echo with ``concurrency`` (64) requests in flight on ``workers`` (4) workers through
the handle's actor path (the DataPlane and, in alternating rounds, the Worker actors), from a
real embedding actor (``LoadActor``, one ``Execute`` per reply; and with ``batch_replies`` +
``ExecuteBatch``, also through the Worker actors), each against the direct path; CPU per request
summed over every process of the run (client, actors, worker processes); a 10 ms sleep on 8
workers through the actor path against raw gRPC; the direct path against the
one-thread-per-worker raw router for echo and a 1 ms CPU tool. Every loop is bounded in count
and in time.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, WakeupMessage

from snakepit_actors.client.handle import Pool
from snakepit_actors.config import DataPath, PoolConfig
from snakepit_actors.messages import (
    Execute,
    ExecuteBatch,
    ExecuteFailed,
    ExecuteReplies,
    ExecuteResult,
)
from snakepit_actors.ops.bench_tools import Figure, Rate, per_slot, raw_slots, routed, throughputs

if TYPE_CHECKING:
    from snakepit_actors.ops.bench import BenchOptions

SCENARIOS = ("message",)


# --- the embedding actor ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunLoad:
    """Bench -> ``LoadActor``: keep ``in_flight`` requests of ``tool`` going to ``pool`` until
    ``count`` replies or ``seconds`` pass; answer ``LoadDone``. ``batched``: send
    ``ExecuteBatch`` and ask for ``ExecuteReplies`` (the fast form of the protocol)."""

    pool: Any
    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 64
    count: int = 1000
    seconds: float = 5.0
    batched: bool = False


@dataclass(frozen=True, slots=True)
class LoadDone:
    """``LoadActor`` -> bench: of ``sent`` requests, ``replies`` were answered (``failed`` of
    them with an error; ``duplicates`` extra replies: must be 0), in ``elapsed_s``."""

    sent: int
    replies: int
    failed: int
    duplicates: int
    elapsed_s: float
    first_error: str = ""


class LoadActor(ActorTypeDispatcher):
    """An actor using a pool the way an embedding application does: ``Execute`` to the Pool
    actor, one reply per request, the next request sent as each reply arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._job: RunLoad | None = None
        self._asker: Any = None
        self._sent = 0
        self._seen: set[str] = set()
        self._failed = self._duplicates = 0
        self._first_error = ""
        self._t0 = self._stop_at = 0.0

    def receiveMsg_RunLoad(self, msg: RunLoad, sender: Any) -> None:
        self._job, self._asker = msg, sender
        self._t0, self._stop_at = time.perf_counter(), time.monotonic() + msg.seconds
        self._send(msg.in_flight)
        self.wakeupAfter(msg.seconds + 30.0)  # answer even if replies went missing

    def receiveMsg_ExecuteResult(self, msg: ExecuteResult, sender: Any) -> None:
        self._answered([msg])

    def receiveMsg_ExecuteFailed(self, msg: ExecuteFailed, sender: Any) -> None:
        self._answered([msg])

    def receiveMsg_ExecuteReplies(self, msg: ExecuteReplies, sender: Any) -> None:
        self._answered(list(msg.replies))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:
        self._finish()

    def _answered(self, replies: list[ExecuteResult | ExecuteFailed]) -> None:
        fresh = 0
        for reply in replies:
            if reply.request_id in self._seen:
                self._duplicates += 1
                continue
            self._seen.add(reply.request_id)
            fresh += 1
            if isinstance(reply, ExecuteFailed):
                self._failed += 1
                self._first_error = self._first_error or repr(reply.error)
        self._send(fresh)
        if len(self._seen) >= self._sent:
            self._finish()

    def _send(self, n: int) -> None:
        job = self._job
        if job is None or time.monotonic() > self._stop_at:
            return
        n = min(n, job.count - self._sent)
        batch = tuple(Execute(f"load-{self._sent + i}", job.tool, job.args, timeout_s=60.0,
                              batch_replies=job.batched) for i in range(n))
        self._sent += n
        if job.batched and len(batch) > 1:
            self.send(job.pool, ExecuteBatch(batch))
        else:
            for request in batch:
                self.send(job.pool, request)

    def _finish(self) -> None:
        if self._asker is None:
            return
        self.send(self._asker, LoadDone(self._sent, len(self._seen), self._failed, self._duplicates,
                                        time.perf_counter() - self._t0, self._first_error))
        self._asker = None


def load_from_actor(pool: Pool, load: RunLoad) -> LoadDone:
    """Run ``load`` from a new ``LoadActor`` in ``pool``'s actor system (then stop it).

    Raises:
        RuntimeError: no ``LoadDone`` within the load's time bound (+60 s).
    """
    with pool._system.actor_system.private() as ctx:
        actor = ctx.createActor(LoadActor)
        try:
            done = ctx.ask(actor, RunLoad(pool._gateway.pool, load.tool, load.args,
                                          load.in_flight, load.count, load.seconds,
                                          load.batched), load.seconds + 60.0)
        finally:
            ctx.tell(actor, ActorExitRequest())
    if not isinstance(done, LoadDone):
        raise RuntimeError(f"the load actor did not answer: {done!r}")
    return done


# --- CPU per request over every process of a run ------------------------------------------------

@contextmanager
def cpu_meter(pool: Pool) -> Iterator[list[float]]:
    """Yields a list that holds, afterwards, the CPU seconds every process of ``pool`` spent
    (this process, the actor system's, the worker processes)."""
    import psutil

    def processes() -> list[Any]:
        sid = os.getsid(pool.admin_pid)
        found = {os.getpid(): psutil.Process()}
        found.update({w.pid: psutil.Process(w.pid) for w in pool.workers() if w.pid})
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == sid:
                    found[p.pid] = p
            except OSError:
                continue
        return list(found.values())

    def total(procs: list[Any]) -> float:
        spent = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                spent += t.user + t.system
            except psutil.Error:
                continue
        return spent

    procs = processes()
    before = total(procs)
    out: list[float] = []
    yield out
    out.append(total(procs) - before)


# --- the scenario -------------------------------------------------------------------------------

def message(o: BenchOptions) -> list[Figure]:
    """The figures of the module docstring."""
    workers, inflight = o.workers or 4, o.concurrency
    where = f"echo, {inflight} in flight, {workers} workers"
    o.say("message API: direct path and raw gRPC ...")
    with _pool("bench-msg-direct", "direct", o, workers) as pool, \
            raw_slots(pool, "echo", {"x": 1}) as slots:
        call = functools.partial(pool.execute, "echo", {"x": 1})
        per_thread, fair, direct = throughputs(
            [per_slot(slots), routed(slots), call], inflight, o.count(8000), o.seconds,
            threads=[len(slots), inflight, inflight])
        direct_cpu = _cpu_per_request(pool, call, inflight, o)
        o.say("message API: an embedding actor ...")
        actor_rate, actor_cpu, actor_done = _actor_load(pool, o, inflight, batched=False)
        batched_rate, _, batched_done = _actor_load(pool, o, inflight, batched=True)
    o.say("message API: the handle, data_path='actor', DataPlane and Worker actors "
          "(alternating rounds) ...")
    with _pool("bench-msg-actor", "actor", o, workers) as pool, \
            _pool("bench-msg-workers", "actor", o, workers, data_plane=False, prefetch=2) as wp:
        call = functools.partial(pool.execute, "echo", {"x": 1})
        wcall = functools.partial(wp.execute, "echo", {"x": 1})
        handle, workers_path = throughputs([call, wcall], inflight, o.count(8000), o.seconds)
        handle_cpu, workers_cpu = _cpu_alternating([(pool, call), (wp, wcall)], inflight, o)
        o.say("message API: an embedding actor, through the Worker actors ...")
        wbatched_rate, _, wbatched_done = _actor_load(wp, o, inflight, batched=True)
    target = ">= 0.8x direct, >= 1,200/s"
    figures = [
        _rate(f"raw gRPC {where}, one thread per worker slot", per_thread),
        _rate(f"raw gRPC {where}, fair router, {inflight} threads", fair),
        _rate(f"direct path {where}, vs one-thread-per-slot raw", direct, per_thread.per_s,
              ">= 0.75x"),
        _rate(f"message API via handle (data_path='actor') {where}", handle, direct.per_s,
              target),
        _rate(f"message API via handle, Pool and Worker actors (data_plane=False, prefetch 2) "
              f"{where}", workers_path, direct.per_s),
        _rate(f"message API via handle, DataPlane vs Worker actors, {where}", handle,
              workers_path.per_s),
        _rate(f"message API from an embedding actor {where}", actor_rate, direct.per_s, target),
        _rate(f"message API from an embedding actor, ExecuteBatch + batch_replies, {where}",
              batched_rate, direct.per_s, target),
        _rate(f"the same through the Worker actors (data_plane=False, prefetch 2), {where}",
              wbatched_rate, direct.per_s),
        Figure("message API via handle: CPU per request, all processes", handle_cpu, "ms",
               direct_cpu, "<= 1.5 ms"),
        Figure("message API via handle, data_plane=False: CPU per request, all processes",
               workers_cpu, "ms", direct_cpu),
        Figure("message API via handle: CPU per request, DataPlane vs Worker actors",
               handle_cpu, "ms", workers_cpu),
        Figure("message API from an embedding actor: CPU per request, all processes",
               actor_cpu, "ms", direct_cpu, "<= 1.5 ms"),
        Figure("message API from an embedding actor: duplicate or missing replies",
               sum(d.duplicates + d.sent - d.replies
                   for d in (actor_done, batched_done, wbatched_done)),
               "req", target="0"),
    ]
    return figures + _sleep(o, inflight) + _cpu_tool(o, inflight)


def _sleep(o: BenchOptions, inflight: int) -> list[Figure]:
    workers = 8
    o.say(f"message API: 10 ms sleep, {workers} workers ...")
    with _pool("bench-msg-sleep", "actor", o, workers) as pool, \
            raw_slots(pool, "sleep", {"seconds": 0.01}) as slots:
        raw, ours = throughputs([routed(slots), functools.partial(
            pool.execute, "sleep", {"seconds": 0.01})], inflight, o.count(3200), o.seconds)
    where = f"10 ms sleep, {workers} workers, {inflight} in flight"
    return [_rate(f"raw gRPC {where} (message run)", raw),
            _rate(f"message API via handle {where}", ours, raw.per_s, ">= 0.9x raw")]


def _cpu_tool(o: BenchOptions, inflight: int) -> list[Figure]:
    workers = o.workers or 2
    o.say(f"direct path: 1 ms cpu tool, {workers} workers ...")
    with _pool("bench-msg-cpu", "direct", o, workers) as pool, \
            raw_slots(pool, "cpu", {"ms": 1.0}) as slots:
        per_thread, ours = throughputs(
            [per_slot(slots), functools.partial(pool.execute, "cpu", {"ms": 1.0})], inflight,
            o.count(4000), o.seconds, threads=[len(slots), inflight])
    where = f"1 ms cpu, {workers} workers"
    return [_rate(f"raw gRPC {where}, one thread per worker slot", per_thread),
            _rate(f"direct path {where}, {inflight} threads, vs one-thread-per-slot raw", ours,
                  per_thread.per_s, ">= 0.9x")]


def _actor_load(pool: Pool, o: BenchOptions, inflight: int,
                batched: bool) -> tuple[Rate, float, LoadDone]:
    load = RunLoad(None, "echo", {"x": 1}, inflight, o.count(8000), o.seconds, batched)
    with cpu_meter(pool) as spent:
        done = load_from_actor(pool, load)
    rate = Rate(done.replies / done.elapsed_s if done.elapsed_s else 0.0, [])
    return rate, spent[0] * 1000.0 / max(1, done.replies), done


def _cpu_per_request(pool: Pool, call: Callable[[], Any], inflight: int,
                     o: BenchOptions) -> float:
    with cpu_meter(pool) as spent:
        (rate,) = throughputs([call], inflight, o.count(4000), min(o.seconds, 5.0), rounds=1)
    return spent[0] * 1000.0 / max(1, len(rate.latencies_ms))


def _cpu_alternating(runs: list[tuple[Pool, Callable[[], Any]]], inflight: int,
                     o: BenchOptions, rounds: int = 2) -> list[float]:
    """CPU per request of each (pool, call), measured in alternating rounds (the mean)."""
    spent = [0.0] * len(runs)
    for _ in range(rounds):
        for i, (pool, call) in enumerate(runs):
            spent[i] += _cpu_per_request(pool, call, inflight, o) / rounds
    return spent


def _pool(name: str, path: DataPath, o: BenchOptions, workers: int, **fields: Any) -> Pool:
    return Pool.start(PoolConfig(name=name, pool_size=workers, queue_timeout=60.0,
                                 data_path=path, **fields))


def _rate(label: str, rate: Rate, baseline: float | None = None, target: str = "") -> Figure:
    return Figure(label, rate.per_s, "req/s", baseline, target, rate.p50_ms, rate.p99_ms)


RUNNERS: dict[str, Callable[[BenchOptions], list[Figure]]] = {"message": message}
