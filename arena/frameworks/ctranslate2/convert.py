"""The CTranslate2 conversion: the shared weights as a local Hugging Face folder, then CTranslate2's own
Transformers converter (`ctranslate2.converters.TransformersConverter`) at fp32, as a user converts a
Hub checkpoint (`ct2-transformers-converter --model <folder> --quantization float32`).

The HF folder is `save_pretrained` of the reference module itself (built by `arena.frameworks.torch`
from the spec's config, loaded strictly with our weights, whose names are already HF's), so its
config.json and safetensors are exactly what the reference runs; it lives in a temporary folder next
to the conversion and goes when the conversion is made. Only CTranslate2's output (model.bin,
config.json, vocabulary.json) is cached.

Our models have no tokenizer (cells feed token ids), and the converter reads the vocabulary and the
special tokens from one, so `IdVocabulary` stands in for it: every id gets a name of its own, and the
id the family's file chooses is named "<|endoftext|>", which both families' special tokens resolve to.
Token names are all CTranslate2 keeps from a tokenizer; ids in, logits out, the names are only how
its string API spells an id (`token`).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from arena.frameworks.contract import BuildContext, Conversion
from arena.frameworks.conversion import cached_conversion, conversion_folder

CONVERTER_DISTRIBUTIONS = ("ctranslate2", "transformers", "torch")
SPECIAL = "<|endoftext|>"


def token(i: int, special: int) -> str:
    """The name of token id `i` in the converted vocabulary."""
    return SPECIAL if i == special else f"<|id{i}|>"


class IdVocabulary:
    """What CTranslate2's Transformers converter reads from a tokenizer (`get_vocab`, the special tokens
    and `additional_special_tokens`, from which Whisper's loader takes language ids: none here)."""

    def __init__(self, size: int, special: int):
        self.size, self.special = size, special
        self.bos_token = self.eos_token = self.unk_token = SPECIAL
        self.additional_special_tokens: list[str] = []

    def get_vocab(self) -> dict[str, int]:
        return {token(i, self.special): i for i in range(self.size)}


def converter(vocabulary: IdVocabulary):
    """CTranslate2's Transformers converter, handed `vocabulary` instead of loading a tokenizer
    (`load_tokenizer` is the converter's method for that, as `load_model` is for the model)."""
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kwargs: Any) -> IdVocabulary:
            return vocabulary

    return Converter


def converted(family: str, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, special: int) -> tuple[Path, Conversion]:
    """The cell's CTranslate2 model folder (converted now or reused) and its conversion record."""
    versions = {d: importlib.metadata.version(d) for d in CONVERTER_DISTRIBUTIONS}
    tool_id = f"ct2-{family}-" + "-".join(f"{d}{v}" for d, v in versions.items()) + "-float32"
    folder = conversion_folder(ctx.convert_dir, tool_id, Path(__file__))

    def make(scratch: Path) -> None:
        from arena.frameworks.onnxruntime.export import reference_module  # imports torch: only when not cached

        vocabulary = IdVocabulary(config.vocab_size, special)
        with tempfile.TemporaryDirectory(dir=scratch.parent, prefix=".hf-") as hf:
            reference_module(family, config, weights, ctx.threads).module.save_pretrained(hf)
            # `force`: the scratch folder exists already (the converter replaces it).
            converter(vocabulary)(hf).convert(str(scratch), quantization="float32", force=True)

    tool = ("ctranslate2.converters.TransformersConverter (quantization float32) on the reference module's "
            "save_pretrained folder, with " + ", ".join(f"{d} {v}" for d, v in versions.items()))
    return folder, cached_conversion(folder, tool, make)
