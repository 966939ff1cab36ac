"""The SmolVLA expert in ExecuTorch: the reference module (lerobot's structure, arena/frameworks/torch/
vla_expert.py) exported as one method, a denoising step at any time t, at the inference and the latency
batch; the Euler sampling loop around it runs on the host, as ExecuTorch's own runners drive a repeated
step (its LLM runner's decode loop is C++ around one exported step).

Not the ONNX path's unrolled loop (arena/frameworks/onnxruntime/export/vla_expert.py): at the full preset
its ten unrolled steps made to_edge_transform_and_lower run past the cell's deadline of then, 1800 s
(measured on the 2-core AMD EPYC, executorch 1.5.1); one step converts in a tenth of the graph. The
loop's arithmetic is lerobot's sample_actions, in float32 torch on the host: x += dt * v(x, t),
t += dt, dt = -1 / num_steps.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from arena.families.vla_expert import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.executorch import common

DENOISE = "denoise"


def at_time(feeds: Mapping[str, np.ndarray], time: float) -> dict[str, np.ndarray]:
    """The denoising method's feeds: noise first (`common.batch_size` reads the batch from the first feed;
    the stacked prefix K/V lead with the layer axis), the workload's prefix K/V, and t for every batch row."""
    noise = feeds["noise"]
    return {"noise": noise, "prefix_keys": feeds["prefix_keys"], "prefix_values": feeds["prefix_values"], "time": np.full(len(noise), time, dtype=np.float32)}


def methods(config: Config, weights: dict[str, np.ndarray], inputs: dict[str, dict[str, np.ndarray]], threads: int) -> list:
    # torch and the reference's libraries: only when converting
    from arena.frameworks.onnxruntime.export import Graph, reference_module
    from arena.frameworks.onnxruntime.export.vla_expert import Sample

    class DenoiseAt(Sample):
        def forward(self, prefix_keys: torch.Tensor, prefix_values: torch.Tensor, noise: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
            return self.flow.denoise_step(prefix_keys, prefix_values, *self.prefix(prefix_keys, noise), noise, time)

    flow = reference_module("vla_expert", config, weights, threads).module.model
    denoise = Graph(DENOISE, DenoiseAt(flow, int(inputs["inference"]["num_steps"])), {}, ("velocity",))
    return common.per_batch(denoise, [at_time(inputs[workload], 1.0) for workload in ("inference", "latency")])


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> common.Model:
    return common.build(methods, config, weights, ctx, inputs)


def inference(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """lerobot's sample_actions: num_steps calls of the denoising method, the Euler update between them."""
    num_steps, feeds = int(inputs["num_steps"]), at_time(inputs, 1.0)
    method = model.method_for(DENOISE, feeds)
    executable, arguments = model.methods[method], model.arguments(method, feeds)
    names = model.signatures[method]["inputs"]
    noise_at, time_at, batch = names.index("noise"), names.index("time"), common.batch_size(feeds)

    def sample() -> torch.Tensor:
        dt, time, x_t = torch.tensor(-1.0 / num_steps), torch.tensor(1.0), arguments[noise_at]
        step_arguments = list(arguments)
        for _ in range(num_steps):
            step_arguments[noise_at], step_arguments[time_at] = x_t, time.repeat(batch)
            (v_t,) = executable.execute(step_arguments)
            x_t = x_t + dt * v_t
            time = time + dt
        return x_t

    return Step(run=sample, fetch=lambda x_t: {"actions": x_t.numpy()})


def latency(model: common.Model, inputs: dict[str, np.ndarray]) -> Step:
    """One denoising step at t = 1."""
    return model.step(DENOISE, at_time(inputs, 1.0), returns=("velocity",))
