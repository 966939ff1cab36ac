"""A run's cells on a Ray cluster: one Ray task per cell, the local cell path on the node, the Result back here.

Why Ray directly and not Hydra's Ray launcher: a Hydra launcher's unit is a Hydra job, and arena's Hydra job
is a whole run (plan() builds the cells in Python, like optimum-benchmark's leaderboard runner). Through the
launcher each cell would have to become a sweep job, every job with the same `ray.remote` options (no
per-cell resources, so no placing an nvidia cell on a GPU server), all gathered by one `ray.get` at the end
(one lost node fails the sweep, finished results included) and their output left on each worker's disk.
One task per cell gets per-cell resources, returns each result as soon as its cell settles, and tells a
lost node apart from a failed cell.

The submitting machine is the Ray driver: either a node of the cluster (`ray start --address=HEAD:6379`
without arena resources, so no cell lands on it; executor.address=auto) or outside it through Ray Client
(executor.address=ray://HEAD:10001). Either way results travel as Ray objects, not files.

Where each step happens:
- here (the submitting machine): plan, the check that the cluster can serve every cell, and the results
  store. A cell's previous results go out with it, its Result comes back and is written here into the
  platform folder of the machine that ran it. No shared file system is assumed.
- on the node: its own system description (with its Ray node id), the weights (generated from the spec
  into the node's cache), the cell's child process in the node's timing slot, and the verdict. The PyTorch
  reference runs on demand on that node, like a local run's: a verdict then never depends on which machine
  computed the reference, and the outputs it compares (full tensors) never cross the network; only the
  Result does. The cost is one untimed reference run per model on each node that needs one.

A node lost while it ran a cell: the cell is recorded `crashed`, naming the node and the error, and is not
retried. A half-timed cell proves nothing, and a cell that took its machine down (out of memory) would take
a second one down. Re-running the command runs it again (a crashed cell is never kept) and keeps the rest.
A cell whose node was lost before the cell's process started had nothing measured: it is sent again, once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from arena import weights
from arena.cluster.resources import Requirement, cell_requirement, missing, node_resources, resources_json
from arena.errors import ArenaError
from arena.results.schema import Correctness, Result
from arena.results.store import result_path, results_by_platform, write_json_atomic
from arena.run.cell import Cell
from arena.run.config import RunConfig
from arena.run.orchestrate import Run, keeps, measure_and_judge, unfinished_result
from arena.run.progress import Progress
from arena.run.system import describe
from arena.specs import load_spec

CONNECT_TIMEOUT_S = 5.0
CLIENT_ATTEMPTS = 5  # connecting through Ray Client (see connect)
POLL_S = 1.0  # how often news of started cells is fetched while waiting for results
STALL_CHECK_S = 5.0  # how often a quiet run checks that the cluster still has nodes for the cells left
SENDS = 2  # a cell lost before its process started is sent once more


class Settled(BaseModel):
    result: Result
    kept: bool  # a still-valid previous result on the node's platform (nothing ran, nothing to write)


class Board:
    """Where nodes say which cell they started, with the record to write if the node is lost from then on.

    A Ray actor on the submitting machine's node. A cell's task tells it before the cell's process starts
    and waits for the answer, so a cell that was lost after starting always has its record here. (A
    generator task's first `yield` could carry the same news, but Ray Client has no generator tasks.)
    """

    def __init__(self):
        self.news: dict[int, Result] = {}

    def started(self, index: int, record: Result) -> None:
        self.news[index] = record

    def take(self) -> dict[int, Result]:
        news, self.news = self.news, {}
        return news


@dataclass
class Order:
    """One cell in flight: which it is, how often it was sent, and what its node said so far."""

    index: int
    cell: Cell
    requirement: Requirement
    sends: int = 1
    started: Result | None = None  # the node's record of the cell, once it started it
    started_at: float = 0.0


# --- on the node ---------------------------------------------------------------------------------------

def run_on_node(board, index: int, config: RunConfig, run_id: str, cell: Cell, spec_text: str, previous: dict[str, Result]) -> Settled:
    """The Ray task of one cell: the same path as a local run's cell, with this node's description."""
    import ray

    system = describe().model_copy(update={"node_id": ray.get_runtime_context().get_node_id()})
    run = node_run(config, run_id, cell, spec_text)
    spec = run.specs[cell.model]
    weights_file = weights.materialize(spec, cell.preset, run.cache_dir)
    mine = previous.get(system.platform_id)
    if keeps(run, cell, mine, weights_file):
        return Settled(result=mine, kept=True)
    ray.get(board.started.remote(index, unfinished_result(run, cell, spec, weights_file, system)))
    return Settled(result=measure_and_judge(run, cell, weights_file, system), kept=False)


def node_run(config: RunConfig, run_id: str, cell: Cell, spec_text: str) -> Run:
    """The run as this node sees it: the submitter's spec, written into the node's cache (the cell's child
    reads its spec from a file), and thread count and paths resolved here."""
    cache_dir = config.path(config.cache_dir)
    folder = cache_dir / "cluster-specs" / hashlib.sha256(spec_text.encode()).hexdigest()[:16]
    path = folder / f"{cell.model}.yaml"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(spec_text)
        os.replace(tmp, path)
    node_config = config.model_copy(update={"specs_dir": str(folder)})
    return Run(config=node_config, specs={cell.model: load_spec(path)}, cells=[cell], run_id=run_id)


# --- on the submitting machine --------------------------------------------------------------------------

def execute(run: Run, log=print) -> list[Result]:
    """Send every cell to the cluster, write each result into this machine's store as it comes back."""
    ray = import_ray()
    address = run.config.executor.address
    connected_here = connect(ray, address, log)
    try:
        orders = [Order(i, cell, cell_requirement(run.config.matrix, cell)) for i, cell in enumerate(run.cells)]
        serving = check_servable(orders, alive_nodes(ray), address, run.config.matrix)
        log(f"arena: {len(run.cells)} cells, matrix {run.config.matrix}, preset {run.config.preset} → {run.results_dir}; "
            f"Ray cluster at {address}: {len(serving)} node(s) serve this run: {', '.join(serving)}")
        return Dispatch(run, ray, log, parallel=len(serving)).collect(orders)
    finally:
        if connected_here:
            ray.shutdown()


class Dispatch:
    """Sends cells as Ray tasks and settles what comes back: results, and cells lost with their node."""

    def __init__(self, run: Run, ray, log, parallel: int):
        self.run, self.ray, self.log = run, ray, log
        self.progress = Progress(len(run.cells), log, parallel=parallel)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()  # with Ray Client: the head's, where the driver runs
        self.board = ray.remote(num_cpus=0)(Board).options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote()
        self.task = ray.remote(run_on_node)
        self.config = config_for_nodes(run.config)
        self.spec_texts = {name: (run.config.specs_path / f"{name}.yaml").read_text() for name in run.specs}
        self.commit = describe().arena_commit
        self.seen_nodes: set[str] = set()

    def collect(self, orders: list[Order]) -> list[Result]:
        pending = {self.send(order): order for order in orders}
        by_index = {order.index: order for order in orders}
        results: dict[int, Result] = {}
        unserved: list[Order] = []
        last_check = time.monotonic()
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for index, record in self.ray.get(self.board.take.remote()).items():
                self.on_started(by_index[index], record)
            if not ready:
                if time.monotonic() - last_check > STALL_CHECK_S:
                    unserved += self.drop_unservable(pending)
                    last_check = time.monotonic()
                continue
            order = pending.pop(ready[0])
            try:
                settled = self.ray.get(ready[0])
            except self.ray.exceptions.RayTaskError as err:  # the task raised: arena's error on the node, or a bug
                if isinstance(err.cause, ArenaError):
                    raise ArenaError(f"{order.cell.id} on {self.where(order)}: {err.cause}") from None
                raise
            except self.ray.exceptions.RayError as err:  # the task's worker or node is gone
                if order.started is None and order.sends < SENDS:
                    order.sends += 1
                    self.log(f"  {order.cell.id}: its node was lost before the cell started; sent again")
                    pending[self.send(order)] = order
                elif order.started is None:
                    unserved.append(order)
                else:
                    results[order.index] = self.record_lost(order, err)
                continue
            results[order.index] = self.on_settled(order, settled)
        if unserved:
            self.log(f"arena: {len(unserved)} cell(s) not run, no node of the cluster could take them any more: "
                     f"{', '.join(o.cell.id for o in unserved)}; re-run when nodes serving them are back")
        return [results[i] for i in sorted(results)]

    def send(self, order: Order):
        previous = {} if self.run.config.force else results_by_platform(
            self.run.results_dir, order.cell.model, order.cell.preset, order.cell.file_stem)
        options = dict(
            resources=order.requirement.resources, num_gpus=order.requirement.num_gpus,
            num_cpus=0,  # the node's one arena_slot is what limits it; a CPU count would only add a second limit
            max_retries=0, retry_exceptions=False,  # never re-run a cell behind our back (module docstring)
            name=f"arena {order.cell.id}",
        )
        return self.task.options(**options).remote(self.board, order.index, self.config, self.run.run_id, order.cell,
                                                    self.spec_texts[order.cell.model], previous)

    def on_started(self, order: Order, record: Result) -> None:
        order.started, order.started_at = record, time.monotonic()
        if record.system.node_id not in self.seen_nodes:
            self.seen_nodes.add(record.system.node_id)
            if record.system.arena_commit != self.commit:
                self.log(f"  note: {self.where(order)} runs arena {record.system.arena_commit or '(unknown commit)'}, "
                         f"this machine {self.commit or '(unknown commit)'}")
        deadline = self.run.specs[order.cell.model].presets[order.cell.preset].timeout_s
        self.progress.running(order.cell, deadline, where=f" on {self.where(order)}")

    def on_settled(self, order: Order, settled: Settled) -> Result:
        result = settled.result
        if settled.kept:
            self.progress.kept(order.cell, result)
            return result
        self.store(order.cell, result)
        self.progress.finished(order.cell, result, time.monotonic() - order.started_at, where=f" on {self.where(order)}")
        return result

    def record_lost(self, order: Order, err: Exception) -> Result:
        result = order.started.model_copy(deep=True)
        result.status = "crashed"
        result.reason = f"lost with its node ({self.where(order)}) while the cell ran: {type(err).__name__}: {first_line(err)}"
        result.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        result.correctness = Correctness(verdict="n/a", reason="cell status crashed")
        self.store(order.cell, result)
        self.progress.finished(order.cell, result, time.monotonic() - order.started_at, where=f" on {self.where(order)}")
        return result

    def store(self, cell: Cell, result: Result) -> None:
        """Into this machine's store, under the platform of the node that ran the cell."""
        path = result_path(self.run.results_dir, result.system.platform_id, cell.model, cell.preset, cell.file_stem)
        write_json_atomic(path, result.model_dump(mode="json"))

    def drop_unservable(self, pending: dict) -> list[Order]:
        """Cells not yet started that no live node can take any more (their nodes were lost): Ray would
        keep them queued for ever, so they are cancelled and named at the end."""
        nodes = alive_nodes(self.ray)
        dropped = []
        for ref, order in list(pending.items()):
            if order.started is None and not servable(order.requirement, nodes):
                self.ray.cancel(ref, force=True)
                del pending[ref]
                dropped.append(order)
        return dropped

    def where(self, order: Order) -> str:
        if order.started is None:
            return "an unknown node"
        return f"{order.started.system.hostname} (node {order.started.system.node_id[:8]})"


def config_for_nodes(config: RunConfig) -> RunConfig:
    """The run's settings as the nodes read them. `~` in cache_dir is each node's own home; a relative
    cache_dir is taken from here (a Ray worker's working directory is Ray's, not the user's)."""
    cache_dir = config.cache_dir
    if not cache_dir.startswith("~") and not Path(cache_dir).is_absolute():
        cache_dir = str(config.path(cache_dir))
    return config.model_copy(update={"cache_dir": cache_dir})


def check_servable(orders: list[Order], nodes: dict[str, dict[str, float]], address: str, matrix: str) -> list[str]:
    """The nodes that can run at least one cell; an ArenaError naming what is missing if some cell has none."""
    unserved: dict[str, list[Cell]] = {}  # what the cells need (as text) → the cells
    for order in orders:
        if not servable(order.requirement, nodes):
            unserved.setdefault(resources_json(order.requirement.needs()), []).append(order.cell)
    if unserved:
        offers = "; ".join(f"{name}: {', '.join(sorted(k for k in offered if k.startswith('arena_') or k == 'GPU')) or 'no arena resources'}"
                           for name, offered in nodes.items()) or "(no live nodes)"
        needs = "; ".join(f"{', '.join(c.id for c in cells[:3])}{' …' if len(cells) > 3 else ''} need {needed}"
                          for needed, cells in unserved.items())
        raise ArenaError(
            f"no node of the Ray cluster at {address} can run {sum(map(len, unserved.values()))} cell(s): {needs}. "
            f"The nodes offer: {offers}. Start a node that serves matrix {matrix!r} with "
            f"`ray start --address=HEAD:6379 --resources='{resources_json(node_resources([matrix]))}'` "
            f"(`python -m arena.cluster resources --matrix {matrix}` prints it on that machine)"
        )
    return [name for name, offered in nodes.items() if any(not missing(o.requirement, offered) for o in orders)]


def servable(requirement: Requirement, nodes: dict[str, dict[str, float]]) -> bool:
    """Whether some node offers everything the cell needs."""
    return any(not missing(requirement, offered) for offered in nodes.values())


def alive_nodes(ray) -> dict[str, dict[str, float]]:
    """Live nodes by a readable name (host and short node id) → the resources they offer."""
    return {f"{n['NodeManagerHostname']} (node {n['NodeID'][:8]})": n["Resources"] for n in ray.nodes() if n["Alive"]}


def connect(ray, address: str, log=print) -> bool:
    """Join the cluster as a driver; True if this call connected (and so should disconnect).

    Ray's own `ray.init` retries an unreachable address for minutes; a quick TCP check first turns a wrong
    or stale address into an error at once."""
    if ray.is_initialized():
        return False
    target = resolve_address(address)
    host, _, port = target.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        raise ArenaError(f"no Ray cluster at {target}" + (f" (executor.address={address})" if target != address else "")
                         + f": {err}. Start one with `ray start --head`, or set executor.address=HEAD:6379") from None
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=target, namespace="arena", log_to_driver=False, logging_level=logging.WARNING)
            return True
        except ConnectionAbortedError as err:
            # Ray Client's server forks a process per client, and sometimes that process never answers
            # (ray-project/ray#63202, open): the server gives up after its channel check (30 s by
            # default) and the next connection gets a new process.
            ray.shutdown()
            if attempt == CLIENT_ATTEMPTS:
                raise ArenaError(f"the Ray Client server at {target} failed to start a session {CLIENT_ATTEMPTS} times: "
                                 f"{first_line(err)}; or submit from a node of the cluster (executor.address=HEAD:6379)") from None
            log(f"arena: the Ray Client server at {target} lost the session it started (ray-project/ray#63202): "
                f"{first_line(err)}; connecting again ({attempt + 1}/{CLIENT_ATTEMPTS})")
    return True


def resolve_address(address: str) -> str:
    """`auto` the way Ray resolves it (RAY_ADDRESS, else the cluster `ray start` last joined on this machine)."""
    if address != "auto":
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    try:
        return current.read_text().strip()
    except OSError:
        raise ArenaError("executor.address=auto, but no Ray cluster was started on this machine "
                         f"({current} is missing): start one with `ray start`, or set executor.address=HEAD:6379") from None


def import_ray():
    try:
        import ray
    except ModuleNotFoundError as err:
        if err.name != "ray":
            raise
        raise ArenaError('executor=ray needs Ray on this machine and on every node: pip install -e ".[ray]"') from err
    return ray


def first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]
