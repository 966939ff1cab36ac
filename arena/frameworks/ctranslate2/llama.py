"""LLaMA (SmolLM2) in CTranslate2: `ctranslate2.Generator` on the converted reference module (convert.py).

CTranslate2's LLaMA loader (converters/transformers.py, LlamaLoader) maps LlamaForCausalLM onto its
decoder-only Transformer spec: pre-norm RMSNorm, SwiGLU, rotate-half RoPE with the config's theta,
grouped K/V heads, the tied head. Id 0 is named "<|endoftext|>", SmolLM2's bos, eos and unk token.

What is timed and what is compared:
  * inference: `forward_batch` on the prompt ids, which returns the logits of every position (not
    log-probs: `return_log_probs` is off) after one decoder pass with no cache, the reference's work.
  * latency: one decode step on a cached prompt, through the API CTranslate2 documents for reusing a
    prompt's state (`static_prompt`, "Performance tips": it is forwarded once and its decoder state
    kept in the model's cache, keyed by the prompt's ids). The step's set-up forwards each row's prompt
    once (untimed); a timed call then runs, per row, `generate_batch([[next token]], static_prompt=
    prompt, max_length=1)`: a copy of the cached state (the prompt's K/V) into a fresh decoding state,
    one decoder step for the next token at position prompt_len, and the greedy pick of the one token
    it generates; `return_logits_vocab` hands back that step's logits (before any softmax:
    `return_scores` is off), which are compared. The static prompt is one per call, so the B rows of a
    batch run one after another in the timed call (the full preset is batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import ctranslate2
import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.ctranslate2 import convert
from arena.frameworks.ctranslate2.common import runtime_options, to_numpy

SPECIAL_TOKEN = 0  # SmolLM2's <|endoftext|>


@dataclass
class Model:
    generator: ctranslate2.Generator
    conversion: Conversion


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    folder, conversion = convert.converted("llama", config, weights, ctx, SPECIAL_TOKEN)
    return Model(ctranslate2.Generator(str(folder), **runtime_options(ctx)), conversion)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = np.ascontiguousarray(inputs["input_ids"], dtype=np.int32)
    batch = ctranslate2.StorageView.from_array(ids)
    lengths = ctranslate2.StorageView.from_array(np.full(len(ids), ids.shape[1], np.int32))

    def run() -> ctranslate2.StorageView:
        return model.generator.forward_batch(batch, lengths)  # synchronous: returns once the device is done

    return Step(run=run, fetch=lambda logits: {"logits": to_numpy(logits)})


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    rows = [([convert.token(int(i), SPECIAL_TOKEN) for i in prompt], [[convert.token(int(step[0]), SPECIAL_TOKEN)]])
            for prompt, step in zip(inputs["input_ids"], inputs["next_input_ids"], strict=True)]

    def decode(prompt: list[str], step: list[list[str]]) -> ctranslate2.GenerationResult:
        return model.generator.generate_batch(step, static_prompt=prompt, max_length=1, return_logits_vocab=True)[0]

    for prompt, step in rows:
        decode(prompt, step)  # forwards the prompt once and caches its state (untimed)

    def run() -> list[ctranslate2.GenerationResult]:
        return [decode(prompt, step) for prompt, step in rows]

    def fetch(results: list[ctranslate2.GenerationResult]) -> dict[str, np.ndarray]:
        steps = [result.logits[0] for result in results]  # the one hypothesis's steps, each [vocab]
        if any(len(s) != 1 for s in steps):
            raise RuntimeError(f"expected one decoding step per row, got {[len(s) for s in steps]}")
        return {"logits": np.stack([to_numpy(s[0])[None] for s in steps])}

    return Step(run=run, fetch=fetch)
