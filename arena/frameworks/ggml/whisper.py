"""Whisper in whisper.cpp: its C API (through ctypes, `whisper_cpp.py`) on a GGML file converted from
the shared weights, CPU back-end, flash attention off. The matrices are F16 in the file (whisper.cpp's
CPU back-end cannot run F32 conv kernels, so an all-F32 file aborts; see `whisper_cpp`).

The conversion (`whisper_cpp.write_model`) is cached like every conversion (`arena/frameworks/conversion.py`).
whisper.cpp's state holds one sequence, so each batch row gets its own `whisper_state` (made in the
step's untimed set-up, with its mel input already set); a timed call loops over the rows. The mel input
is HF's `input_features[b]` as is ([n_mels, n_frames], C order = whisper.cpp's data[mel*n_len + frame]);
the encoder copies frames [0, 2*n_audio_ctx) and would zero-pad past n_len, and the family's input has
exactly 2*max_source_positions frames, so it reads all of them and nothing else. A spec whose MLP is
narrower than whisper.cpp's fixed 4*d_model (the tiny preset) is zero-padded in the file: same values,
more MLP FLOPs in the timed calls (see `whisper_cpp`).

What is timed and what is compared:
  * inference: the timed call runs, per row, the encoder (conv + transformer + the cross-attention K/V
    of every decoder layer) and ONE decoder call over all `decoder_len` teacher-forced tokens
    (n_past 0): the reference's work, once. whisper.cpp computes logits for every position there, but
    copies out only the last one (`whisper_decode` flags only the last token of its batch), so the
    all-position logits that are compared come from the untimed `fetch`: a token-by-token decode
    (token i at n_past = i, reading row 0 each time) on the same state, which is the same causal
    computation through the KV cache. `fetch` also checks that the timed call's last row agrees with the
    token-by-token last row (to 2e-3 of the logits' scale: F16 through different matmul kernels for 1
    and T rows, nothing more), so the timed call is known to have computed the compared values. The encoder output
    is copied out of the state by `whisper_cpp.EncoderReadout` (no public accessor; see there).
  * latency: the set-up encodes and decodes the prefix (n_past 0) per row; the timed call decodes
    `next_decoder_input_ids` at n_past = prefix length for every row (whisper.cpp drops cache entries
    from n_past on before each decode, so every call sees the same cache); logits are row 0.

Flash attention (whisper.cpp's default) is off: at full size it makes the encoder + decoder call 22 %
faster (0.80 s against 1.03 s on 2 cores) but moves the logits by 6.8e-3 between the full decode and the
token-by-token one (F16 accumulation), beyond the tolerance this cell is judged by.

Numerics (why this cell has its own output tolerance in the spec): F16 weights, and with them F16
activations in every matrix product (ggml's CPU mul_mat converts the F32 operand to the weight's
type); attention with F16 operands (the encoder casts K and V to F16, the decoder's self- and
cross-attention caches are F16, so Q and the softmax are rounded to F16 in those products); and a CPU
GELU that is the tanh approximation read from an F16 table (HF Whisper: exact erf GELU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.conversion import cached_conversion, conversion_folder
from arena.frameworks.ggml import whisper_cpp

MODEL_FILE = "ggml-model-f16.bin"
# The full decode's last row vs the token-by-token one, relative to max |logit|. Both are whisper.cpp's
# F16 arithmetic through different kernels (T rows vs 1 row); F16's epsilon is 9.8e-4, and at full
# size (4 layers, 51865-way head) the two differ by 3.1e-4 of the scale (0 at tiny). A wrong position
# or a stale row differs by the scale itself.
LAST_ROW_RTOL = 2e-3


@dataclass
class Model:
    context: whisper_cpp.Context
    config: Config
    conversion: Conversion
    readout: whisper_cpp.EncoderReadout | None = None
    readout_problem: str = ""
    padded_mlp: dict[str, int] = field(default_factory=dict)


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    if ctx.device.split(":")[0] != "cpu":
        raise RuntimeError(f"whisper.cpp from the {whisper_cpp.DISTRIBUTION} wheel is a CPU build; device {ctx.device!r} would silently run on the CPU")
    lib = whisper_cpp.library()
    tool_id = f"whispercpp{lib.version}-{whisper_cpp.DISTRIBUTION}{lib.distribution_version}"
    folder = conversion_folder(ctx.convert_dir, tool_id, Path(__file__).parent / "whisper_cpp.py")

    def make(scratch: Path) -> None:
        whisper_cpp.write_model(scratch / MODEL_FILE, whisper_cpp.file_hparams(config), whisper_cpp.ggml_tensors(config, weights))

    tool = (f"arena whisper_cpp.write_model (legacy GGML, ftype 1: F16 matrices, F32 vectors; no vocab) "
            f"for whisper.cpp {lib.version} ({whisper_cpp.DISTRIBUTION} {lib.distribution_version})")
    conversion = cached_conversion(folder, tool, make)
    context = whisper_cpp.Context(folder / MODEL_FILE, ctx.threads)
    expected = (config.vocab_size, config.max_source_positions, config.max_target_positions, config.d_model)
    loaded = (context.n_vocab, context.n_audio_ctx, context.n_text_ctx, context.d_model)
    if loaded != expected:
        raise RuntimeError(f"whisper.cpp loaded (n_vocab, n_audio_ctx, n_text_ctx, d_model) = {loaded}, expected {expected}")
    model = Model(context, config, conversion, padded_mlp=whisper_cpp.pad_mlp(config))
    try:
        model.readout = whisper_cpp.EncoderReadout(context.lib)
    except whisper_cpp.EncoderReadoutError as err:
        model.readout_problem = str(err)
    if model.padded_mlp:
        print(f"whisper.cpp: MLP zero-padded to {whisper_cpp.MLP_RATIO}*d_model = {whisper_cpp.MLP_RATIO * config.d_model} "
              f"units (from {model.padded_mlp}); same values, more MLP FLOPs", flush=True)
    return model


def _rows(model: Model, inputs: dict[str, np.ndarray], tokens: str) -> tuple[list[whisper_cpp.State], list[np.ndarray]]:
    """One state per batch row with its mel set, and each row's token ids as int32 (whisper_token)."""
    mel = np.asarray(inputs["input_features"], np.float32)
    if mel.shape[1:] != (model.config.num_mel_bins, model.config.num_frames):
        raise ValueError(f"input_features {mel.shape}: whisper.cpp's encoder reads exactly "
                         f"{model.config.num_frames} frames of {model.config.num_mel_bins} bins")
    states = []
    for row in mel:
        state = model.context.state()
        state.set_mel(row)
        states.append(state)
    ids = [np.ascontiguousarray(row, dtype=np.int32) for row in inputs[tokens]]
    return states, ids


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    states, ids = _rows(model, inputs, "decoder_input_ids")
    n_tokens = ids[0].shape[0]
    rows = [(state, row, row.ctypes.data) for state, row in zip(states, ids, strict=True)]  # keeps the ids alive

    def run() -> None:
        for state, _, tokens in rows:
            state.encode()
            state.decode(tokens, n_tokens, 0)

    def fetch(_: None) -> dict[str, np.ndarray]:
        encoder, logits = [], []
        for b, (state, row, _) in enumerate(rows):
            last = state.logits(n_tokens)[-1]  # the timed call's last position (before decoding again)
            if model.readout is not None:
                try:
                    encoder.append(model.readout.read(state))
                except whisper_cpp.EncoderReadoutError as err:  # reported as a missing output, logits still compared
                    model.readout, model.readout_problem = None, str(err)
            per_token = []
            for i in range(n_tokens):
                state.decode(row[i:].ctypes.data, 1, i)
                per_token.append(state.logits(1)[0])
            scale = float(np.abs(per_token[-1]).max())
            gap = float(np.abs(last - per_token[-1]).max())
            if not gap <= LAST_ROW_RTOL * scale:
                raise RuntimeError(f"row {b}: the timed full decode's last logits differ from the token-by-token ones by {gap:.3g} (scale {scale:.3g})")
            logits.append(np.stack(per_token))
        out = {"logits": np.stack(logits)}
        if model.readout is not None:
            out["encoder_hidden_states"] = np.stack(encoder)
        else:
            print(f"whisper.cpp: encoder_hidden_states not read: {model.readout_problem}", flush=True)
        return out

    return Step(run=run, fetch=fetch)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix; encoder output, cross K/V and the prefix's self-attention
    cache are computed once per row here (untimed)."""
    states, prefix = _rows(model, inputs, "decoder_input_ids")
    next_ids = [np.ascontiguousarray(row, dtype=np.int32) for row in inputs["next_decoder_input_ids"]]
    n_past = prefix[0].shape[0]
    for state, row in zip(states, prefix, strict=True):
        state.encode()
        state.decode(row.ctypes.data, n_past, 0)
    rows = [(state, row, row.ctypes.data) for state, row in zip(states, next_ids, strict=True)]  # keeps the ids alive

    def run() -> None:
        for state, _, token in rows:
            state.decode(token, 1, n_past)

    def fetch(_: None) -> dict[str, np.ndarray]:
        return {"logits": np.stack([state.logits(1) for state in states])}

    return Step(run=run, fetch=fetch)
