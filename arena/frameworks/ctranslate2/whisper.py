"""Whisper in CTranslate2: `ctranslate2.models.Whisper` on the converted reference module (convert.py),
the model faster-whisper and WhisperX run.

Its Python API has two calls that reach the model: `encode` (mel -> encoder output) and `generate`
(decoding from a prompt, given the mel or the encoder output); there is no teacher-forced forward that
returns every position's logits. So the compared logits come from the path CTranslate2 has, as for
whisper.cpp (arena/frameworks/ggml/whisper.py): `generate` with the whole teacher-forced row as the
prompt, greedy, `return_logits_vocab`. Its decoding loop feeds the prompt's tokens one by one, each a
decoder step with the self-attention cache, cross-attention K/V computed at the first step and kept,
and every step's logits come back (before any softmax: `return_scores` is off), one per position;
the prompt's tokens are forced, so position t sees tokens 0..t of the row, as in the reference's
causal pass. `fetch` checks both: T logits rows per utterance, and the tokens decoded are the row's.

How the prompt is read. CTranslate2's Whisper reads the prompt's layout from token names, assuming
OpenAI's vocabulary (src/models/whisper.cc, WhisperReplica::generate): tokens from
<|startoftranscript|> through the task tokens up to <|notimestamps|> are the "prompt" (forwarded at
once, no logits returned), the rest a forced prefix of the decoding; and unless the prompt ends with
<|notimestamps|>, the timestamp rules rewrite the logits (tokens masked to -inf, timestamps forced
when their total probability wins). Our rows are the start token and random ids, with no tokenizer,
so the conversion names the start token "<|endoftext|>" and leaves "<|startoftranscript|>" and
"<|notimestamps|>" out of the vocabulary: a missing token resolves to the unknown token, which
CTranslate2's Whisper fixes as "<|endoftext|>", so start-of-transcript, end-of-text and
no-timestamps are all the start token. The prompt is then the start token alone, ending "without
timestamps" (no timestamp rule applies), and every text token is a forced decoding step. The other
logits processors are off (`suppress_tokens=[]`, `suppress_blank=False`), and the end token is never
masked (Whisper's decoding returns its prefix, so `min_length` 0 masks nothing). A row whose first
text token is the start id again would be read as a two-token prompt; `inference` refuses it.

What is timed: `encode` of the mel batch and `generate` from its output over the T-token rows (T
decoder steps, the last one greedily picking one token past the row): the reference's work, with the
decoder run token by token instead of in one pass. Latency is unsupported (see the package).
"""

from __future__ import annotations

from dataclasses import dataclass

import ctranslate2
import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Conversion, Step
from arena.frameworks.ctranslate2 import convert
from arena.frameworks.ctranslate2.common import runtime_options, to_numpy


@dataclass
class Model:
    whisper: ctranslate2.models.Whisper
    config: Config
    conversion: Conversion


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Model:
    folder, conversion = convert.converted("whisper", config, weights, ctx, config.decoder_start_token_id)
    return Model(ctranslate2.models.Whisper(str(folder), **runtime_options(ctx)), config, conversion)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    start = model.config.decoder_start_token_id
    rows = inputs["decoder_input_ids"]
    if (rows[:, 0] != start).any() or (rows[:, 1:2] == start).any():
        raise ValueError(f"every row must start with the start token {start} and not repeat it next: CTranslate2 "
                         "would read the repeat as part of the prompt and return no logits for it")
    prompts = rows.tolist()
    mel = ctranslate2.StorageView.from_array(np.ascontiguousarray(inputs["input_features"], dtype=np.float32))
    n = rows.shape[1]

    def run() -> tuple[ctranslate2.StorageView, list]:
        encoded = model.whisper.encode(mel)  # synchronous
        # max_length caps prompt + generated tokens at 2n; Whisper's decoding stops after n steps (min(2n / 2, 2n)).
        results = model.whisper.generate(encoded, prompts, beam_size=1, max_length=2 * n, return_logits_vocab=True,
                                          suppress_tokens=[], suppress_blank=False)
        return encoded, results

    def fetch(out: tuple[ctranslate2.StorageView, list]) -> dict[str, np.ndarray]:
        encoded, results = out
        logits = []
        for row, result in zip(rows, results, strict=True):
            steps = result.logits[0]  # the one hypothesis's steps, each [vocab]
            # The decoded tokens leave out the end token (here the start id) wherever it is forced.
            forced = [int(t) for t in row[1:] if t != start]
            decoded = result.sequences_ids[0][: len(forced)]
            if len(steps) != n or decoded != forced:
                raise RuntimeError(f"generate returned {len(steps)} logits rows and tokens {decoded}; "
                                   f"expected {n} rows for the forced tokens {forced}")
            logits.append(np.stack([to_numpy(step) for step in steps]))
        return {"encoder_hidden_states": to_numpy(encoded), "logits": np.stack(logits)}

    return Step(run=run, fetch=fetch)
