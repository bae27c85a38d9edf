"""Where an oracle runs: in the training process (``inline``), on a pool of local processes (``processes``) or on
Ray actors, local or on a cluster (``ray``). The executor, not the oracle, does the parallel work, so any
oracle, built-in or plugin, gets it by configuration (the task's ``executor`` setting)::

    executor: inline                                   # the default: one call per batch, in this process
    executor: {name: processes, workers: 8, batch_size: 16, retries: 1}
    executor: {name: ray, address: auto, num_cpus: 1, num_gpus: 0.25, batch_size: 16}

A pool builds the oracle once per worker (a stateful oracle loads its model once) and sends it parts of
``batch_size`` objects (default: a quarter of a worker's share, so a worker that finishes early takes over).
A part whose worker dies, or that runs past ``oracle_timeout`` (then its worker is killed, so a call stuck in
C code does not hold a core), is sent again up to ``retries`` times; after that its objects are invalid, and
reported and counted as any object the oracle cannot score. A lost Ray cluster (its head node gone) stops the
run with one line and a resumable checkpoint: the executor probes the head's control service (GCS) itself, so it
notices within seconds rather than waiting on Ray, which would end the process after
``RAY_gcs_rpc_server_reconnect_timeout_s`` (60 s unless set; lgfn sets it to an hour when it connects).
"""

from __future__ import annotations

import inspect
import math
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from lgfn.errors import ConfigError, TrainingError
from lgfn.oracles.calls import OracleError, OracleFactory, one_line, score_batch

PARTS_PER_WORKER = 4
"""Parts a batch is cut into per worker by default, so an idle worker takes over from one whose core is busy."""
POLL_S = 0.05
"""Longest wait between checks of the running parts' deadlines."""
PROBE_EVERY_S = 1.0
"""Longest time between two probes of a Ray cluster's head while parts are out."""
PROBE_TIMEOUT_S = 5.0
"""How long a probe of the head waits for a connection before the cluster counts as lost."""
GCS_GRACE_S = 3600
"""What lgfn sets ``RAY_gcs_rpc_server_reconnect_timeout_s`` to (unless set): how long Ray lets this process live
once its head is gone. Ray's 60 s could end a run before its checkpoint is written."""


class ClusterLost(TrainingError):
    """The Ray cluster went away during a run (a head node stopped, a network failure). A training error: the
    run saves a resumable checkpoint and stops with one line; the round being scored never reached replay, so
    a resumed run counts no object twice."""


class Outcome(NamedTuple):
    """What became of one part: its values and per-object errors, or why all of it was lost."""

    values: np.ndarray | None
    errors: dict[int, str]
    lost: str | None = None


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which schedulers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Executor:
    """Scores the parts of a batch. ``batch_size``: objects per call (None: the executor's default)."""

    name = "executor"

    def __init__(self, batch_size: int | None = None) -> None:
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"executor batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def part_size(self, n: int) -> int:
        return self.batch_size or n

    def run(self, factory: OracleFactory, parts: list[Any], name: str, timeout: float | None) -> list[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers now (the next call starts new ones)."""


class InlineExecutor(Executor):
    """Today's behaviour: the oracle is built in this process and called on each part here. A call past
    ``oracle_timeout`` is interrupted (SIGALRM) and its part split in halves to find the slow objects."""

    name = "inline"

    def __init__(self, batch_size: int | None = None) -> None:
        super().__init__(batch_size)
        self._oracle: Any = None

    def oracle(self, factory: OracleFactory) -> Any:
        if self._oracle is None:
            self._oracle = factory.build()
        return self._oracle

    def run(self, factory: OracleFactory, parts: list[Any], name: str, timeout: float | None) -> list[Outcome]:
        oracle = self.oracle(factory)
        return [Outcome(*score_batch(oracle, part, name, timeout)) for part in parts]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_oracle": None}  # rebuilt from the factory where it is unpickled


class PoolExecutor(Executor):
    """Common scheduling of the pools: one part in flight per worker, deadlines and retries per part."""

    def __init__(self, workers: int | None = None, batch_size: int | None = None, retries: int = 1) -> None:
        super().__init__(batch_size)
        if workers is not None and workers < 1:
            raise ConfigError(f"executor workers must be >= 1, got {workers}")
        if retries < 0:
            raise ConfigError(f"executor retries must be >= 0, got {retries}")
        self.workers, self.retries = workers, retries

    def part_size(self, n: int) -> int:
        return self.batch_size or max(math.ceil(n / (PARTS_PER_WORKER * self.slots())), 1)

    def slots(self) -> int:
        raise NotImplementedError

    # a backend starts its workers, sends a part to one, and reports what came back
    def _start(self, factory: OracleFactory, name: str) -> None:
        raise NotImplementedError

    def _submit(self, slot: int, part: Any) -> None:
        raise NotImplementedError

    def _poll(self, busy: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        """(slot, kind, payload) of what arrived: kind ``ready`` (built), ``ok``, ``error`` or ``died``."""
        raise NotImplementedError

    def _restart(self, slot: int, factory: OracleFactory, name: str) -> None:
        raise NotImplementedError

    def run(self, factory: OracleFactory, parts: list[Any], name: str, timeout: float | None) -> list[Outcome]:
        self._start(factory, name)
        try:
            return self._schedule(factory, parts, name, timeout)
        except BaseException:  # Ctrl-C, a lost cluster, a broken oracle: no stale part may answer a later call
            self.close()
            raise

    def _schedule(self, factory: OracleFactory, parts: list[Any], name: str, timeout: float | None) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(parts)
        tries = [0] * len(parts)
        queue = deque(range(len(parts)))
        running: dict[int, list[Any]] = {}  # slot -> [part index, when its clock started (None: still building)]
        while queue or running:
            for slot in range(self.slots()):
                if queue and slot not in running:
                    i = queue.popleft()
                    self._submit(slot, parts[i])
                    running[slot] = [i, time.monotonic() if self._ready[slot] else None]
            for slot, kind, payload in self._poll(list(running), POLL_S):
                i = running[slot][0]
                if kind == "ready":
                    self._ready[slot] = True
                    running[slot][1] = time.monotonic()
                    continue
                del running[slot]
                if kind == "ok":
                    outcomes[i] = Outcome(*payload)
                elif kind == "error":
                    raise OracleError(payload)
                elif not self._ready[slot]:
                    raise OracleError(f"oracle {name}: a worker died before its oracle was built ({payload}); check "
                                      "that it builds there (a script that runs lgfn on processes must start under "
                                      "`if __name__ == '__main__':`), or set executor: inline")
                else:
                    self._retry(i, f"lost: its worker died ({payload})", tries, queue, outcomes)
                    self._restart(slot, factory, name)
            now = time.monotonic()
            for slot, (i, started) in list(running.items()):
                if timeout is not None and started is not None and now - started > timeout:
                    del running[slot]
                    self._retry(i, f"timed out after {timeout:g} s", tries, queue, outcomes)
                    self._restart(slot, factory, name)
        return outcomes  # type: ignore[return-value]

    def _retry(self, i: int, reason: str, tries: list[int], queue: deque[int], outcomes: list[Outcome | None]) -> None:
        tries[i] += 1
        if tries[i] <= self.retries:
            queue.append(i)
        else:
            outcomes[i] = Outcome(None, {}, f"{reason}, {tries[i]} tries")


def _worker_main(conn: Connection, factory: OracleFactory, name: str) -> None:
    """A pool process: build the oracle once, then score the parts it is sent until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the main process, which stops the workers
    try:
        oracle = factory.build()
    except BaseException as err:  # noqa: BLE001 (reported by the main process in one line)
        conn.send(("error", f"oracle {name} could not be built in a worker process ({one_line(err)})"))
        return
    conn.send(("ready", None))
    while True:
        try:  # plain pickle: torch would move tensors sent through a pipe to shared memory, one file each
            part = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if part is None:
            return
        try:
            conn.send(("ok", score_batch(oracle, part, name)))
        except OracleError as err:
            conn.send(("error", str(err)))


class ProcessExecutor(PoolExecutor):
    """A pool of ``workers`` local processes (default: the available cores), started (spawn) on the first batch
    and kept; never pickled. Each worker holds the plugin modules the main process loaded (by module name)."""

    name = "processes"

    def __init__(self, workers: int | None = None, batch_size: int | None = None, retries: int = 1) -> None:
        super().__init__(workers, batch_size, retries)
        self._procs: list[tuple[multiprocessing.process.BaseProcess, Connection] | None] = []
        self._ready: list[bool] = []
        self._owner = 0

    def slots(self) -> int:
        return self.workers or available_cores()

    def _start(self, factory: OracleFactory, name: str) -> None:
        if self._procs and self._owner == os.getpid():
            return
        self._procs, self._ready, self._owner = [None] * self.slots(), [False] * self.slots(), os.getpid()
        self._built = (factory, name)
        for slot in range(self.slots()):
            self._restart(slot, factory, name)
        self._finalizer = weakref.finalize(self, _stop_processes, self._procs, self._owner)

    def _restart(self, slot: int, factory: OracleFactory, name: str) -> None:
        if self._procs[slot] is not None:
            _kill(self._procs[slot])
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(child, factory, name), daemon=True, name=f"lgfn-oracle-{slot}")
        process.start()
        child.close()
        self._procs[slot], self._ready[slot] = (process, parent), False

    def _submit(self, slot: int, part: Any) -> None:
        if not self._procs[slot][0].is_alive():  # type: ignore[index]  # it died while idle: a new one takes the part
            self._restart(slot, *self._built)
        self._procs[slot][1].send_bytes(pickle.dumps(part))  # type: ignore[index]

    def _poll(self, busy: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        by_handle = {}
        for slot in busy:
            process, conn = self._procs[slot]  # type: ignore[misc]
            by_handle[conn] = by_handle[process.sentinel] = slot
        found: dict[int, tuple[int, str, Any]] = {}
        for handle in wait(list(by_handle), timeout):
            slot = by_handle[handle]
            process, conn = self._procs[slot]  # type: ignore[misc]
            if slot in found:
                continue
            if conn.poll():
                try:
                    found[slot] = (slot, *conn.recv())
                    continue
                except (EOFError, OSError):
                    pass
            process.join(1)
            found[slot] = (slot, "died", f"exit code {process.exitcode}")
        return list(found.values())

    def close(self) -> None:
        if self._procs and self._owner == os.getpid():
            self._finalizer()
        self._procs = []

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (checkpoints, deepcopy): the processes stay behind, and a copy starts its own."""
        state = {**self.__dict__, "_procs": [], "_ready": []}
        state.pop("_finalizer", None)
        state.pop("_built", None)
        return state


def _kill(proc: tuple[multiprocessing.process.BaseProcess, Connection]) -> None:
    process, conn = proc
    if process.is_alive():
        process.kill()  # SIGKILL: a call in C code cannot delay it
    process.join(5)
    conn.close()


def _stop_processes(procs: list[Any], owner: int) -> None:
    """Stop a pool's processes, only in the process that started them (a forked child holds a copy)."""
    if os.getpid() != owner:
        return
    for proc in procs:
        if proc is not None:
            _kill(proc)
    procs.clear()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("executor ray needs Ray: pip install 'lgfn[ray]'") from None
    return ray


class _RayWorker:
    """A Ray actor: builds the oracle once (an error is kept and reported, so the actor does not die of it)."""

    def __init__(self, factory: OracleFactory, name: str) -> None:
        self.name, self.oracle, self.error = name, None, None
        try:
            self.oracle = factory.build()
        except BaseException as err:  # noqa: BLE001 (reported by the driver in one line)
            self.error = f"oracle {name} could not be built on a Ray worker ({one_line(err)})"

    def ready(self) -> tuple[str, Any]:
        return ("error", self.error) if self.error else ("ready", None)

    def score(self, part: Any) -> tuple[str, Any]:
        try:
            return "ok", score_batch(self.oracle, part, self.name)
        except OracleError as err:
            return "error", str(err)


class RayExecutor(PoolExecutor):
    """``workers`` Ray actors (default: as many as the cluster's CPUs and GPUs hold at ``num_cpus`` and
    ``num_gpus`` each), each holding the oracle. ``address``: ``auto`` (the cluster this machine belongs to),
    ``host:port``, or None (the Ray session this process has, or a new local one). Plugin files loaded with
    ``--plugins`` travel to the workers with the oracle; lgfn must be installed on every node."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, batch_size: int | None = None, retries: int = 1) -> None:
        super().__init__(workers, batch_size, retries)
        if num_cpus < 0 or num_gpus < 0:
            raise ConfigError(f"executor num_cpus and num_gpus must be >= 0, got {num_cpus} and {num_gpus}")
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self._actors: list[Any] = []
        self._ready: list[bool] = []
        self._pending: dict[int, Any] = {}  # slot -> the ref it waits on: its readiness, then its part
        self._parts: dict[int, Any] = {}  # slot -> the ref of the part it was sent
        self._head: str | None = None  # host:port of the cluster's control service, once connected ("": none)
        self._probed = -math.inf
        self._lost: str | None = None  # why the cluster was lost: every later call stops with it

    def slots(self) -> int:
        if self.workers is not None:
            return self.workers
        ray = self._connect()
        resources = ray.cluster_resources()
        fits = [resources.get("CPU", 0) / self.num_cpus] if self.num_cpus else []
        fits += [resources.get("GPU", 0) / self.num_gpus] if self.num_gpus else []
        self.workers = max(int(min(fits)) if fits else 1, 1)
        return self.workers

    def _connect(self) -> Any:
        ray = _import_ray()
        if self._lost is not None or (self._actors and not ray.is_initialized()):
            raise ClusterLost(self._lost or self._lost_message("its session was shut down"))
        if not ray.is_initialized():
            os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(GCS_GRACE_S))
            try:
                if self.address is None:
                    ray.init(include_dashboard=False)
                else:
                    ray.init(address=self.address)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ConfigError(f"cannot reach the Ray cluster at {self.address} ({one_line(err)}); start it "
                                  "(ray start --head) or fix executor.address") from None
        return ray

    def _lost_message(self, why: str) -> str:
        where = f" at {self._head}" if self._head else ""
        return f"the Ray cluster{where} was lost ({why}); restart it and resume the run from its last checkpoint"

    def _probe(self, ray: Any, now: bool = False) -> None:
        """Raise :class:`ClusterLost` if the head's control service (GCS) takes no connection. Ray's own calls
        would wait for it instead (and Ray ends the process once its reconnect timeout passes); a connection
        attempt answers at once. At most every ``PROBE_EVERY_S`` unless ``now``."""
        clock = time.monotonic()
        if not now and clock - self._probed < PROBE_EVERY_S:
            return
        self._probed = clock
        if self._head is None:
            self._head = _head_address(ray, self.address)
        if not self._head:
            return
        host, port = self._head.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
        except OSError as err:
            self._lost = self._lost_message(f"its head takes no connection: {err.strerror or one_line(err)}")
            raise ClusterLost(self._lost) from None

    def _start(self, factory: OracleFactory, name: str) -> None:
        ray = self._connect()
        self._probe(ray, now=True)
        if self._actors:
            return
        _ship_plugin(ray, factory)
        self._remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0)(_RayWorker)
        self._actors, self._ready = [None] * self.slots(), [False] * self.slots()
        for slot in range(self.slots()):
            self._restart(slot, factory, name)

    def _restart(self, slot: int, factory: OracleFactory, name: str) -> None:
        ray = self._connect()
        if self._actors[slot] is not None:
            ray.kill(self._actors[slot])
        self._actors[slot] = self._remote.remote(factory, name)
        self._ready[slot] = False
        self._pending[slot] = self._actors[slot].ready.remote()

    def _submit(self, slot: int, part: Any) -> None:
        self._parts[slot] = self._actors[slot].score.remote(part)
        if self._ready[slot]:
            self._pending[slot] = self._parts[slot]

    def _poll(self, busy: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        ray = self._connect()
        self._probe(ray)
        by_ref = {self._pending[slot]: slot for slot in busy}
        try:
            done, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout)
        except Exception as err:  # noqa: BLE001 (the connection itself failed)
            self._lost = self._lost_message(one_line(err))
            raise ClusterLost(self._lost) from None
        found = []
        for ref in done:
            slot = by_ref[ref]
            try:
                kind, payload = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                self._probe(ray, now=True)  # a worker or node failed (go on), or the whole cluster (stop)
                found.append((slot, "died", one_line(err)))
                continue
            if kind == "ready":
                self._pending[slot] = self._parts[slot]
            found.append((slot, kind, payload))
        return found

    def close(self) -> None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            for actor in self._actors:
                if actor is not None:
                    ray.kill(actor)
            if self._lost is not None:  # leave the dead cluster now (a few seconds) rather than at exit
                ray.shutdown()
        self._actors, self._ready, self._pending, self._parts = [], [], {}, {}

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "_actors": [], "_ready": [], "_pending": {}, "_parts": {}, "_lost": None,
                 "_head": None, "_probed": -math.inf}
        state.pop("_remote", None)
        return state


def _head_address(ray: Any, address: str | None) -> str:
    """host:port of the connected cluster's control service, or "" where this process cannot probe it: through
    Ray Client (``ray://``), which keeps its own connection to the cluster."""
    if address is not None and address.startswith("ray://"):
        return ""
    try:
        return str(ray.get_runtime_context().gcs_address or "")
    except Exception:  # noqa: BLE001 (an older or client-mode Ray without it: no probe)
        return ""


def _ship_plugin(ray: Any, factory: OracleFactory) -> None:
    """A plugin loaded from a file is not importable on other nodes: send its code with the oracle (by value)."""
    module = sys.modules.get(getattr(factory.target, "__module__", None) or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        return
    from lgfn.plugins import loaded

    if str(Path(path).resolve()) in loaded():
        ray.cloudpickle.register_pickle_by_value(module)


EXECUTORS: dict[str, type[Executor]] = {"inline": InlineExecutor, "processes": ProcessExecutor, "ray": RayExecutor}


def make_executor(spec: str | Mapping[str, Any] | Executor | None) -> Executor:
    """An executor from ``inline``, ``processes``, ``ray`` or ``{name: ..., setting: value}``."""
    if isinstance(spec, Executor):
        return spec
    spec = {"name": spec or "inline"} if spec is None or isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)} (or a mapping with name), got {name!r}")
    cls = EXECUTORS[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(spec) - set(valid))
    if unknown:
        raise ConfigError(f"executor {name} got unknown setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**spec)
