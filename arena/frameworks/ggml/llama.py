"""LLaMA in llama.cpp (llama-cpp-python), from a GGUF written from the shared weights (gguf_llama.py).

Token ids in, logits out: no tokenizer is involved. `logits_all` makes llama.cpp return the logits of
every prompt position; the KV cache is F32 (llama.cpp's default is F16) so that the cache is not a
precision loss the other frameworks don't have. llama-cpp-python's Llama holds one sequence, so a
batch of B rows runs row after row inside one timed call (for inference on one context; for the decode
step on one context per row, each holding its row's prompt cache). The full preset is batch 1.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import llama_cpp
import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.conversion import cached_conversion, conversion_folder
from arena.frameworks.ggml import GPU_DEVICES, gguf_llama

GGUF_FILE = "model-f32.gguf"


class Model:
    def __init__(self, path: Path, config: Config, ctx: BuildContext, n_ctx: int, rows: int, conversion: Conversion):
        self.config, self.ctx, self.conversion = config, ctx, conversion
        self.contexts = [self._open(path, n_ctx) for _ in range(rows)]

    def _open(self, path: Path, n_ctx: int) -> llama_cpp.Llama:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=self.ctx.threads,
            n_threads_batch=self.ctx.threads, n_gpu_layers=-1 if self.ctx.device.split(":")[0] in GPU_DEVICES else 0,
            logits_all=True, flash_attn=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, verbose=False,
        )


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    version = importlib.metadata.version("gguf")
    folder = conversion_folder(ctx.convert_dir, f"gguf{version}-f32", Path(gguf_llama.__file__))
    conversion = cached_conversion(folder, f"arena gguf_llama.py (gguf {version}), F32, no_vocab", lambda out: gguf_llama.write(config, weights, out / GGUF_FILE))
    prompt = inputs["inference"]["input_ids"]
    rows = max(a["input_ids"].shape[0] for a in inputs.values())
    return Model(folder / GGUF_FILE, config, ctx, n_ctx=prompt.shape[1] + 1, rows=rows, conversion=conversion)


def prefill(llm: llama_cpp.Llama, ids: np.ndarray) -> np.ndarray:
    """All-position logits of one row, from an empty cache."""
    llm.reset()
    llm.eval(ids.tolist())
    return llm.scores[: len(ids)]


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = inputs["input_ids"]
    llm = model.contexts[0]

    def run() -> np.ndarray:
        return np.stack([prefill(llm, row).copy() for row in ids])

    return Step(run=run, fetch=lambda logits: {"logits": logits})


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. Each row's prompt fills its context's cache once (untimed);
    `eval` first drops every cache entry from `n_tokens` on, so setting n_tokens back to the prompt
    length makes every timed call see the same prompt-length cache (the reference crops the same way)."""
    prompts, next_ids = inputs["input_ids"], inputs["next_input_ids"]
    contexts = model.contexts[: len(prompts)]
    for llm, row in zip(contexts, prompts, strict=True):
        prefill(llm, row)
    length = prompts.shape[1]

    def run() -> np.ndarray:
        rows = []
        for llm, token in zip(contexts, next_ids[:, 0], strict=True):
            llm.n_tokens = length
            llm.eval([int(token)])
            rows.append(llm.scores[length].copy())
        return np.stack(rows)[:, None, :]

    return Step(run=run, fetch=lambda logits: {"logits": logits})
