"""What the MAX family files share: the model (an inference session, the weights registry and the
compiled graphs), graph construction from `arena.functional` code, and the timed steps.

A family's workload function asks for its graphs with `step` / `call` (through `graph`): a graph is
`fn` traced into a `max.graph.Graph` at the feeds' types, the official-named weights as `Weight`s bound
from the registry when it is loaded (not constants of the compiled program, so a perturbed weight does
not recompile). `build` sets up every workload's step once while the model records (`prepare`): their
graphs are compiled together, as one module, and a timed step never compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from max import engine
from max.driver import CPU, Buffer, Device
from max.dtype import DType
from max.graph import Graph, Module, TensorType, TensorValue, Weight

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step
from arena.frameworks.layouts import kernels_to, to_channels_first, to_channels_last
from arena.frameworks.max import device_ref, driver_device, max_dtype
from arena.frameworks.max import layers as nn

Feeds = Mapping[str, "np.ndarray | Buffer"]
GraphFn = Callable[..., dict[str, TensorValue]]  # (params, *inputs in the feeds' order) -> named outputs


@dataclass
class Model:
    """The config, the cell's context, the inference session, the weights registry (conv
    kernels already HWIO) and the graphs compiled so far, by name and input types."""

    config: Any
    ctx: BuildContext
    session: engine.InferenceSession
    device: Device
    weights: dict[str, np.ndarray]
    compiled: dict[tuple, tuple[engine.Model, list[str]]] = field(default_factory=dict)
    # While `prepare` records: the module the graphs join, and what it holds (key -> graph name, outputs).
    recording: Module | None = None
    pending: dict[tuple, tuple[str, list[str]]] = field(default_factory=dict)
    pending_weights: set[str] = field(default_factory=set)

    @property
    def dtype(self) -> DType:
        return max_dtype(self.ctx)


class LazyParams(Mapping):
    """The official-named weights as a graph's `Weight`s, declared on first use: a graph holds only the
    weights its outputs need (the prefill graph no LM head, say)."""

    def __init__(self, weights: Mapping[str, np.ndarray], dtype: DType, ctx: BuildContext):
        self.weights, self.dtype, self.ctx, self.used = weights, dtype, ctx, {}

    def __getitem__(self, name: str) -> TensorValue:
        if name not in self.used:
            array = self.weights[name]  # KeyError: absent (an optional bias), as a dict's
            self.used[name] = Weight(name, self.dtype, array.shape, device=device_ref(self.ctx))
        return self.used[name]

    def __iter__(self):
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)


def build_model(config: Any, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    """The weights in the cell's dtype, kernels channels-last ([*k, in, out]: ops.conv2d's RSCF), and an
    inference session on the cell's device (on every core: see `probe` for the threads)."""
    dtype = np.dtype(DTYPE_NAMES[ctx.dtype])  # fp32: the probe refuses others
    registry = {name: np.ascontiguousarray(a.astype(dtype) if a.dtype.kind == "f" else a) for name, a in kernels_to(weights, "spatial_first").items()}
    weights.clear()  # the registry holds its own copy (the contract lets build empty the dict)
    device = driver_device(ctx)
    session = engine.InferenceSession(devices=[device])
    return Model(config, ctx, session, device, registry)


def prepare(model: Model, workloads: Mapping[str, Callable[[Model, dict[str, np.ndarray]], Step]], inputs: Mapping[str, dict[str, np.ndarray]]) -> Model:
    """Compile every graph the cell's workloads will run, a workload's graphs as one compilation unit.

    Each workload's step is set up once while the model records: its graphs are built into one
    `max.graph.Module` (a graph fed by another's outputs, such as the decode graph by the prefill's
    cache, is typed by those outputs), compiled by one `InferenceSession.load_all`. MAX documents a
    Module as the way to compile several graphs together; it also pays MAX's fixed cost per compilation
    (about a minute on 2 cores, whatever the graph) once per workload instead of once per graph. One
    module per workload, not per cell: a cell that runs inference alone (the tests' perturbed twin)
    compiles the same inference module, which MAX's compile cache then already holds."""
    for workload, inputs_of in inputs.items():
        if workload not in workloads:
            continue
        model.recording, model.pending, model.pending_weights = Module(), {}, set()
        try:
            workloads[workload](model, inputs_of)
            loaded = model.session.load_all(model.recording, weights_registry={n: model.weights[n] for n in model.pending_weights})
        finally:
            model.recording = None
        model.compiled |= {key: (loaded[graph_name], outputs) for key, (graph_name, outputs) in model.pending.items()}
    return model


def feed_type(model: Model, value: np.ndarray | Buffer | TensorType) -> TensorType:
    if isinstance(value, TensorType):  # an output of a graph being recorded
        return value
    dtype = value.dtype if isinstance(value, Buffer) else DType.from_numpy(value.dtype)
    return TensorType(dtype, tuple(int(d) for d in value.shape), device=device_ref(model.ctx))


def build_graph(model: Model, name: str, fn: GraphFn, types: list[TensorType], module: Module | None = None) -> tuple[Graph, dict[str, TensorValue], set[str]]:
    """`fn` traced into a Graph on inputs of these types: the graph, its outputs, the weights it uses."""
    params = LazyParams(model.weights, model.dtype, model.ctx)
    token = nn.DEVICE.set(device_ref(model.ctx))
    try:
        with Graph(name, input_types=types, module=module) as g:
            outputs = fn(params, *(value.tensor for value in g.inputs))
            g.output(*outputs.values())
    finally:
        nn.DEVICE.reset(token)
    return g, outputs, set(params.used)


def graph(model: Model, name: str, fn: GraphFn, feeds: Feeds) -> tuple[engine.Model | None, list[str], list[TensorType]]:
    """The graph `fn` builds on these feeds' types (cached by name and input types): compiled, its output
    names and types. While the model records (`prepare`), the graph joins the module and is compiled
    with it (None until then); a graph no workload recorded is compiled on its own when first asked for."""
    types = [feed_type(model, v) for v in feeds.values()]
    key = (name, *((str(t.dtype), tuple(int(d) for d in t.shape)) for t in types))
    if model.recording is not None:
        graph_name = f"{name}_{len(model.pending)}"  # unique in the module
        _, outputs, used = build_graph(model, graph_name, fn, types, model.recording)
        model.pending[key] = (graph_name, list(outputs))
        model.pending_weights |= used
        return None, list(outputs), [TensorType(v.dtype, v.shape, device=device_ref(model.ctx)) for v in outputs.values()]
    if key not in model.compiled:
        g, outputs, used = build_graph(model, name, fn, types)
        model.compiled[key] = (model.session.load(g, weights_registry={n: model.weights[n] for n in used}), list(outputs))
    compiled, names = model.compiled[key]
    return compiled, names, []


def to_buffers(model: Model, feeds: Feeds, channels_last: Iterable[str] = ()) -> list[Buffer]:
    """numpy feeds -> Buffers on the cell's device (float feeds in the cell's dtype, `channels_last` ones
    NHWC / NLC); Buffers (a cache an earlier graph left) stay where they are."""
    dtype = np.dtype(DTYPE_NAMES[model.ctx.dtype])
    out = []
    for name, value in feeds.items():
        if not isinstance(value, (Buffer, TensorType)):
            array = to_channels_last(value) if name in channels_last else value
            array = array.astype(dtype) if array.dtype.kind == "f" else array
            value = Buffer.from_numpy(np.ascontiguousarray(array)).to(model.device)
        out.append(value)
    return out


def call(model: Model, name: str, fn: GraphFn, feeds: Feeds, channels_last: Iterable[str] = ()) -> dict[str, Buffer | TensorType]:
    """Run a graph once, untimed (filling a cache): its outputs by name, left on the device (while the
    model records: their types, which is all the next graph needs)."""
    buffers = to_buffers(model, feeds, channels_last)
    compiled, names, types = graph(model, name, fn, dict(zip(feeds, buffers)))
    return dict(zip(names, types if compiled is None else compiled.execute(*buffers)))


def step(model: Model, name: str, fn: GraphFn, feeds: Feeds, channels_last: Iterable[str] = (), channels_first: Iterable[str] = ()) -> Step:
    """A timed step: the compiled graph executed on feeds bound once, the device synchronised before the
    call returns; `channels_first` outputs go back to PyTorch's layout in `fetch` (untimed)."""
    buffers = to_buffers(model, feeds, channels_last)
    compiled, names, _ = graph(model, name, fn, dict(zip(feeds, buffers)))

    def run() -> list[Buffer]:
        out = compiled.execute(*buffers)
        model.device.synchronize()
        return out

    def fetch(out: list[Buffer]) -> dict[str, np.ndarray]:
        arrays = {n: to_numpy(b) for n, b in zip(names, out)}
        return {n: to_channels_first(a) if n in channels_first else a for n, a in arrays.items()}

    return Step(run=run, fetch=fetch)


def to_numpy(buffer: Buffer) -> np.ndarray:
    """A copy on the host (the Buffer's memory is the engine's)."""
    return np.array((buffer if buffer.is_host else buffer.to(CPU())).to_numpy(), copy=True)


def flat_cache(cache: list[tuple[TensorValue, TensorValue]], prefix: str = "past") -> dict[str, TensorValue]:
    """Per-layer (keys, values) as named graph outputs, in layer order (a later graph's feeds)."""
    return {f"{prefix}.{i}.{part}": t for i, kv in enumerate(cache) for part, t in zip(("keys", "values"), kv)}


def layer_cache(flat: tuple[TensorValue, ...]) -> list[tuple[TensorValue, TensorValue]]:
    """The inverse of `flat_cache`, from a graph's inputs in the same order."""
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
