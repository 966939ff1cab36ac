"""SmolVLA's action expert: the flow-matching transformer that turns noise into an action chunk, given
the VLM prefix as a per-layer key/value cache.

Official implementation: lerobot `src/lerobot/policies/smolvla/modeling_smolvla.py` (VLAFlowMatching:
embed_suffix, denoise_step, sample_actions, forward) and `smolvlm_with_expert.py`
(SmolVLMWithExpertModel: forward_attn_layer, forward_cross_attn_layer, eager_attention_forward,
apply_rope). Checkpoint shapes: lerobot/smolvla_base (SmolVLM2-500M text model cut to 16 layers,
expert_width_multiplier 0.75, attention_mode "cross_attn", self_attn_every_n_layers 2).

The expert (`model.vlm_with_expert.lm_expert`) is a transformers LlamaModel without embed_tokens. Its
layers alternate between two kinds:
    i % self_attn_every_n_layers == 0  "self-attention": q/k/v from the action tokens; their K/V are
        RoPE'd (positions prefix_len + arange(chunk)) and appended to the layer's cached VLM prefix K/V;
        every action token sees the whole prefix and the action tokens causally (lerobot's suffix
        att_masks are all 1, so make_att_2d_masks makes them causal).
    otherwise  "cross-attention": k_proj / v_proj are Linear(vlm_kv_dim -> vlm_kv_dim) applied to the
        cached VLM prefix K/V of that layer (post-RoPE, flattened over heads, no further RoPE); the
        query gets RoPE with positions arange(chunk); attention over the prefix only.
RoPE is lerobot's own rotate-half `apply_rope` with max_wavelength 10000 (hard-coded there, exposed
here as `rope_max_wavelength`), not the text config's rope_theta. Attention is lerobot's eager
attention: GQA by repeating KV heads, scale head_dim**-0.5, float32 softmax, masked with finfo.min.
The VLM and the expert share num_attention_heads / num_key_value_heads / head_dim (lerobot deep-copies
the VLM text config), so the VLM's K/V width `vlm_kv_dim` is num_key_value_heads * head_dim.

Suffix: action_emb = action_in_proj(x_t); time_emb = sinusoidal(t, hidden_size, min_period,
max_period) (sin half then cos half, float64 then cast); action_time_mlp_out(silu(action_time_mlp_in(
cat[action_emb, time_emb]))) enters the expert; final norm -> action_out_proj gives the velocity v_t.

Inputs (given the same rng, the same arrays for all three workloads, sliced to the workload's batch):
    prefix_keys, prefix_values  [num_hidden_layers, batch, prefix_len, num_key_value_heads, head_dim]:
        the VLM's per-layer K/V cache of the prefix, as lerobot's prefill stores it (keys post-RoPE).
        Drawn N(0, 1): a rotation of i.i.d. isotropic Gaussian vectors is again i.i.d. Gaussian, so
        these are distributed exactly like RoPE'd keys with unit-variance entries. Unit variance sits
        between what an HF-initialised K/V projection gives for an RMS-normalised hidden state
        (0.02 * sqrt(960) = 0.62) and the larger keys of a trained VLM, and keeps the attention
        logits O(1). No prefix padding (every prefix token is valid).
    noise  [batch, chunk_size, max_action_dim] N(0, 1), the starting point of the denoising.
    inference adds num_steps, a 0-d int64 array (the framework contract passes arrays only).
    training adds actions [batch, chunk_size, max_action_dim] N(0, 1) (lerobot normalises actions
        MEAN_STD, so unit variance is their real scale) and time [batch] drawn like lerobot's
        sample_time: Beta(1.5, 1.0) * 0.999 + 0.001. Keep `time` in float32 (or wider) in every cell, as
        lerobot does: the time embedding's periods go down to min_period = 4 ms, so a bf16-rounded t
        (error up to 2e-3) changes its fast components completely. The sinusoidal embedding itself is
        computed in float64 in lerobot; a float32 one moves the full preset's velocity by ~1.4e-4.

Workloads:
    inference  the whole Euler flow-matching denoise of one chunk (sample_actions): x = noise, t = 1;
               num_steps times: x += dt * v(x, t), t += dt, with dt = -1 / num_steps. Output "actions".
    latency    one denoising step at batch latency_batch: v(noise, t = 1.0). Output "velocity".
    training   flow-matching MSE (VLAFlowMatching.forward): x_t = t * noise + (1 - t) * actions,
               u_t = noise - actions, loss = mean((v(x_t, t) - u_t)^2) over batch, chunk and action
               dims; forward + backward through the expert and the four action projections.

Deviations from lerobot, all outside the expert's arithmetic:
    * The VLM is not run: its per-layer prefix K/V are inputs. lerobot's default train_expert_only
      freezes the VLM and the prefix never attends to the action tokens, so in lerobot's joint
      training forward the prefix K/V are exactly these fixed tensors and the expert's loss and
      gradients are unchanged. What is left out is `model.state_proj` (VLM side: it embeds the robot
      state as one prefix token; lerobot trains it with train_state_proj=True through the frozen VLM),
      so it is neither a tensor here nor in the training gradients.
    * Training uses the cached-prefix formulation (denoise_step) rather than lerobot's joint
      prefix+suffix forward; the arithmetic seen by the expert is identical (same masks, same RoPE
      positions, same K/V), only the VLM half of that forward is skipped.
    * The denoising loop runs exactly num_steps iterations (lerobot's `while time >= -dt / 2` does the
      same for these dt); the time embedding is computed in float64 and the time itself accumulated in
      float32, as in lerobot.
    * Mixed precision: lerobot keeps the VLM in bf16 and the action projections in fp32; a cell here
      runs every tensor in its one dtype, except the time (float32, see above).
    * The prefix has a fixed length with no padding; lerobot pads the language tokens to the longest
      in the batch and masks the padding out.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from arena.families.base import FamilyConfig, FamilyWorkloads, bias_uniform, kaiming_uniform, norm_weight, normal, query_gain, require_divides

OUTPUTS = {"inference": ("actions",), "latency": ("velocity",), "training": ("loss",)}

EXPERT = "model.vlm_with_expert.lm_expert"
ACTION_PROJECTIONS = ("action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out")


class Config(FamilyConfig):
    """The expert's LlamaConfig fields (lerobot derives them from the VLM text config) plus SmolVLAConfig's."""

    hidden_size: int = Field(gt=0, description="expert width: VLM hidden_size * expert_width_multiplier (960 * 0.75)")
    intermediate_size: int = Field(gt=0, description="lerobot get_intermediate_size(hidden_size)")
    num_hidden_layers: int = Field(gt=0, description="expert layers = kept VLM layers (num_vlm_layers)")
    num_attention_heads: int = Field(gt=0, description="shared with the VLM text config")
    num_key_value_heads: int = Field(gt=0, description="shared with the VLM text config")
    head_dim: int = Field(gt=0, description="shared with the VLM text config")
    rms_norm_eps: float = Field(gt=0)
    rope_max_wavelength: float = Field(10000.0, gt=0, description="lerobot apply_rope's max_wavelength (hard-coded there)")
    attention_mode: Literal["cross_attn"] = "cross_attn"
    self_attn_every_n_layers: int = Field(
        description="layer i is a self-attention layer when n > 0 and i % n == 0, otherwise cross-attention"
    )
    max_action_dim: int = Field(gt=0, description="SmolVLAConfig.max_action_dim: actions are padded to this width")
    min_period: float = Field(gt=0, description="time embedding's shortest period (SmolVLAConfig.min_period)")
    max_period: float = Field(gt=0, description="time embedding's longest period (SmolVLAConfig.max_period)")
    initializer_range: float = Field(0.02, gt=0, description="std of the normal init of the Llama layers (HF _init_weights)")

    @model_validator(mode="after")
    def _shapes(self) -> Config:
        require_divides("num_key_value_heads", self.num_key_value_heads, "num_attention_heads", self.num_attention_heads)
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for rotate-half RoPE")
        if self.hidden_size % 2:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be even: the time embedding is half sin, half cos")
        if self.min_period >= self.max_period:
            raise ValueError(f"min_period ({self.min_period}) must be below max_period ({self.max_period})")
        return self

    @property
    def vlm_kv_dim(self) -> int:
        """Width of one token of the VLM's K (or V) cache: the cross-attention k_proj/v_proj input."""
        return self.num_key_value_heads * self.head_dim

    def is_self_attn(self, layer: int) -> bool:
        n = self.self_attn_every_n_layers
        return n > 0 and layer % n == 0


class Workloads(FamilyWorkloads):
    batch: int = Field(gt=0, description="chunks per call (inference and training)")
    latency_batch: int = Field(gt=0, description="chunks in the one-step latency call (1 = one robot)")
    chunk_size: int = Field(gt=0, description="actions per chunk (SmolVLAConfig.chunk_size)")
    prefix_len: int = Field(gt=0, description="VLM prefix tokens cached per layer (images + language + state)")
    num_steps: int = Field(gt=0, description="Euler denoising steps of the inference workload (SmolVLAConfig.num_steps)")


def check_fits(config: Config, workloads: Workloads) -> None:
    """Nothing to cross-check: every size fits every config (RoPE positions are computed, not read
    from a table, and the prefix K/V may have any length)."""

def parameter_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """The expert's and the action projections' entries of SmolVLAPolicy.state_dict()."""
    h, d, inter = config.hidden_size, config.head_dim, config.intermediate_size
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(config.num_hidden_layers):
        p = f"{EXPERT}.layers.{i}"
        kv_in = h if config.is_self_attn(i) else config.vlm_kv_dim
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (q, h),
            f"{p}.self_attn.k_proj.weight": (kv, kv_in),
            f"{p}.self_attn.v_proj.weight": (kv, kv_in),
            f"{p}.self_attn.o_proj.weight": (h, q),
            f"{p}.mlp.gate_proj.weight": (inter, h),
            f"{p}.mlp.up_proj.weight": (inter, h),
            f"{p}.mlp.down_proj.weight": (h, inter),
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.post_attention_layernorm.weight": (h,),
        }
    shapes[f"{EXPERT}.norm.weight"] = (h,)
    a = config.max_action_dim
    for name, (out_features, in_features) in {
        "action_in_proj": (h, a),
        "action_out_proj": (a, h),
        "action_time_mlp_in": (h, 2 * h),
        "action_time_mlp_out": (h, h),
    }.items():
        shapes[f"model.{name}.weight"] = (out_features, in_features)
        shapes[f"model.{name}.bias"] = (out_features,)
    return shapes


_ATTENTION = re.compile(rf"^{re.escape(EXPERT)}\.layers\.(\d+)\.self_attn\.([qkv])_proj\.weight$")


def init_tensor(name: str, shape: tuple[int, ...], config: Config, rng: np.random.Generator) -> np.ndarray:
    """lerobot's init when training from scratch (load_vlm_weights=False):

    * the expert comes from AutoModel.from_config, so HF LlamaPreTrainedModel._init_weights: every
      Linear N(0, initializer_range), every RMSNorm weight 1;
    * the cross-attention k_proj/v_proj are replaced afterwards by fresh nn.Linear, and the action
      projections are nn.Linear of VLAFlowMatching: PyTorch's default kaiming-uniform weight and
      U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias.

    Two changes make every parameter matter (arena/families/base.py): RMSNorm weights 1 + N(0, 0.1),
    and attention that is not near uniform. The query projection's input is RMS-normalised (unit
    spread), so q has spread initializer_range * sqrt(hidden_size) (0.16 tiny, 0.54 full) against keys
    of spread 1 (the N(0, 1) prefix cache, which dominates a self-attention layer's keys) or 1/sqrt(3)
    (a cross-attention k_proj, kaiming-uniform over that cache). q_proj is scaled by `query_gain` for
    those keys, and a self-attention layer's k_proj (on the action tokens) to the prefix keys' unit
    spread, so the logits have a spread of about 2 in every layer.
    """
    if name.endswith("norm.weight"):
        return norm_weight(rng, shape)
    attention = _ATTENTION.match(name)
    if attention:
        self_attn, projection = config.is_self_attn(int(attention.group(1))), attention.group(2)
        if not self_attn and projection in "kv":
            return kaiming_uniform(rng, shape)
        query_std = config.initializer_range * config.hidden_size**0.5
        gain = {"q": query_gain(query_std, 1.0 if self_attn else 1 / np.sqrt(3)), "k": 1.0 / query_std, "v": 1.0}[projection]
        return normal(rng, shape, config.initializer_range) * np.float32(gain)
    if name.startswith(EXPERT):
        return normal(rng, shape, config.initializer_range)
    if name.endswith(".bias"):
        fan_in = parameter_shapes(config)[name.removesuffix(".bias") + ".weight"][1]
        return bias_uniform(rng, shape, fan_in)
    return kaiming_uniform(rng, shape)


def make_inputs(config: Config, workloads: Workloads, workload: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Prefix K/V and noise drawn once at max(batch, latency_batch) and sliced, so every workload sees
    the same leading chunks (the latency velocity is the inference's first step for those chunks)."""
    drawn = max(workloads.batch, workloads.latency_batch)
    b = workloads.latency_batch if workload == "latency" else workloads.batch
    cache_shape = (config.num_hidden_layers, drawn, workloads.prefix_len, config.num_key_value_heads, config.head_dim)
    keys = rng.standard_normal(cache_shape, dtype=np.float32)
    values = rng.standard_normal(cache_shape, dtype=np.float32)
    noise = rng.standard_normal((drawn, workloads.chunk_size, config.max_action_dim), dtype=np.float32)
    inputs = {
        "prefix_keys": np.ascontiguousarray(keys[:, :b]),
        "prefix_values": np.ascontiguousarray(values[:, :b]),
        "noise": np.ascontiguousarray(noise[:b]),
    }
    if workload == "inference":
        # The framework contract hands a workload nothing but these arrays, so the one size that is no
        # array's shape travels as a 0-d int64 array.
        inputs["num_steps"] = np.array(workloads.num_steps, dtype=np.int64)
    if workload == "training":
        inputs["actions"] = rng.standard_normal((b, workloads.chunk_size, config.max_action_dim), dtype=np.float32)
        # lerobot VLAFlowMatching.sample_time: Beta(concentration1=1.5, concentration0=1.0) * 0.999 + 0.001
        inputs["time"] = (rng.beta(1.5, 1.0, size=b) * 0.999 + 0.001).astype(np.float32)
    return inputs


def noisy_actions(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """x_t = t * noise + (1 - t) * actions: the point where the training workload evaluates v."""
    t = inputs["time"][:, None, None]
    return t * inputs["noise"] + (1 - t) * inputs["actions"]


def reference_loss(config: Config, workloads: Workloads, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> float:
    """Flow-matching MSE from the training inputs and `outputs["velocity"]`, the expert's velocity at
    (noisy_actions(inputs), inputs["time"]): mean over batch, chunk and action dims of (v_t - u_t)^2
    with u_t = noise - actions (lerobot's losses.mean(); all max_action_dim columns count)."""
    u_t = inputs["noise"].astype(np.float64) - inputs["actions"].astype(np.float64)
    return float(np.mean((outputs["velocity"].astype(np.float64) - u_t) ** 2))


def _step_macs(config: Config, batch: int, chunk: int, prefix: int) -> tuple[int, int]:
    """Multiply-adds of one denoising step (denoise_step) and, separately, those of its Linear layers
    whose input needs no gradient (their input-gradient matmul never runs in training).

    Counted: every Linear and both attention matmuls (QK^T and PV over the full score matrix, which is
    what lerobot's eager attention computes, masked or not). Left out: RMSNorm, RoPE, softmax, SiLU, the
    sinusoidal time embedding, the residual adds (all elementwise, < 1 %), and nothing is cached across
    steps: lerobot re-projects the prefix K/V through the cross-attention k_proj/v_proj every step.
    """
    h, d, inter, a = config.hidden_size, config.head_dim, config.intermediate_size, config.max_action_dim
    q, kv, heads = config.num_attention_heads * d, config.num_key_value_heads * d, config.num_attention_heads
    suffix = chunk * (a * h + 2 * h * h + h * h)  # action_in_proj, action_time_mlp_in (2h -> h), _out
    head = chunk * h * a  # action_out_proj
    mlp = chunk * 3 * h * inter
    no_input_grad = chunk * a * h  # action_in_proj's input is the (given) noisy action
    layers = 0
    for i in range(config.num_hidden_layers):
        if config.is_self_attn(i):
            projections = chunk * (h * q + 2 * h * kv + q * h)
            attention = 2 * chunk * (prefix + chunk) * heads * d
        else:
            cross_kv = prefix * 2 * config.vlm_kv_dim * kv  # k_proj, v_proj of the cached prefix K/V
            projections = chunk * 2 * h * q + cross_kv
            attention = 2 * chunk * prefix * heads * d
            no_input_grad += cross_kv  # the prefix K/V come from the frozen VLM
        layers += projections + attention + mlp
    return batch * (suffix + layers + head), batch * no_input_grad


def flops(config: Config, workloads: Workloads, workload: str) -> float:
    """2 FLOPs per multiply-add (see _step_macs for what is counted)."""
    chunk, prefix = workloads.chunk_size, workloads.prefix_len
    if workload == "latency":
        return 2.0 * _step_macs(config, workloads.latency_batch, chunk, prefix)[0]
    forward, no_input_grad = _step_macs(config, workloads.batch, chunk, prefix)
    if workload == "inference":
        return 2.0 * workloads.num_steps * forward
    # Backward = 2 x forward (gradients w.r.t. activations and w.r.t. weights), minus the
    # input-gradient matmuls that never run: action_in_proj's input and the frozen prefix K/V.
    return 2.0 * (3 * forward - no_input_grad)


def work_items(workloads: Workloads, workload: str) -> tuple[float, str]:
    """Action chunks per call: denoised (inference), stepped once (latency), trained on (training)."""
    if workload == "latency":
        return workloads.latency_batch, "chunks"
    return workloads.batch, "chunks"


# ---- the time embedding in float32 pieces ---------------------------------------------------------
# Frameworks without float64 (JAX without x64, MLX, most accelerators) evaluate lerobot's float64
# sin(2 pi t / period) exactly in float32 pieces; these are the numpy halves of that computation.

# float32 bits kept by `split_top_bits`: sign, exponent and the 11 leading stored mantissa bits, i.e. 12
# significant bits, so the product of two such numbers (24 bits) is exact in float32.
TOP_BITS = 0xFFFFF000


def split_top_bits(a: np.ndarray) -> np.ndarray:
    """The 12 leading significant bits of a (numpy, as float32)."""
    return (a.astype(np.float32).view(np.uint32) & np.uint32(TOP_BITS)).view(np.float32)


def time_cycle_parts(config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 / period of lerobot create_sinusoidal_pos_embedding (float64: the turns per unit of time of each
    component) as c1 + c2 + c3 in float32: c1, c2 with 12 significant bits, c3 the rest (< 2^-23 c).

    A framework then computes lerobot's float64 sin(2 pi t / period) in float32 as follows: t = t1 + t2
    (t1 its 12 leading bits), so c1 t1, c1 t2, c2 t1 and c2 t2 are exact float32 products; their whole
    turns are dropped exactly (x - round(x)), and only the sum of the fractions (< 1 turn) and c3 t
    round. The angle then lies in [-pi, pi], where float32 sin/cos are accurate to ~1e-7: within 4e-7 of
    float64 over the full preset's frequencies, where a plain float32 product is off by up to 1.2e-4."""
    fraction = np.linspace(0.0, 1.0, config.hidden_size // 2, dtype=np.float64)
    period = config.min_period * (config.max_period / config.min_period) ** fraction
    cycles = 1.0 / period
    c1 = split_top_bits(cycles)
    c2 = split_top_bits(cycles - c1)
    return c1, c2, (cycles - c1 - c2).astype(np.float32)
