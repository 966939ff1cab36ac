"""whisper.cpp without its Python binding's limits: its legacy GGML model file, written from our weights,
and a small ctypes binding of the C API of the library the pywhispercpp wheel ships.

Model file. whisper.cpp loads only its own legacy GGML format (no GGUF), read by `whisper_model_load`
(src/whisper.cpp). Little-endian, int32 unless noted:

    magic 0x67676d6c ("ggml")
    hparams  n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
             n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
    filters  n_mel, n_fft, then n_mel*n_fft float32 (the mel filterbank of whisper_pcm_to_mel; we give
             the mel input ourselves with whisper_set_mel, so they are zeros, but n_mel must be right:
             set_mel checks it)
    vocab    count, then count x (uint32 length, bytes). We write count 0: the loader then names every
             id "[_extra_token_i]" and the model needs no tokenizer (decode takes ids)
    tensors  until EOF: n_dims, name length, ttype (0 = F32, 1 = F16), dims in ggml order (the numpy
             shape reversed), the name, the raw little-endian data

Weight types. whisper.cpp cannot run an all-F32 file on the CPU: with ftype 0 it makes the conv
kernels F32, and ggml's conv_1d always builds an F16 im2col whose CPU kernel asserts an F16 kernel
(`GGML_ASSERT(src0->type == GGML_TYPE_F16)` in ggml_compute_forward_im2col_f16, an abort; upstream
issue ggml-org/whisper.cpp#2557, unchanged at 1.9). So the file is ftype 1 (MOSTLY_F16), the format of
every published whisper.cpp model: the conv kernels, attention and MLP matrices and the token
embedding (which is also the output projection) are F16 (rounded to nearest even from our F32
weights); biases, LayerNorms and both position tables stay F32, as whisper.cpp declares them
(`f16_tensor`). ftype 0 is still written and read for a back-end that can run it.

Names are OpenAI's (`encoder.blocks.0.attn.query.weight`), mapped from the HF names as
`models/convert-h5-to-ggml.py` does; `proj_out` is tied to the token embedding and not written. Shapes
are written as whisper.cpp declares them (no squeezing): the conv biases as (d_model, 1).

One deviation in the file, exact in value: whisper.cpp hard-codes the MLP width as 4*d_model (every
published Whisper). A spec with a narrower MLP (the tiny preset: 128 for d_model 64) is written with its
fc1 rows, fc1 bias and fc2 columns zero-padded to 4*d_model. The padded units compute
gelu(0 + 0) = 0 and add 0 * 0 to the output, so the function is the same; only the MLP's FLOPs grow (by
4*d_model/ffn). `pad_mlp` says where this happened; a wider MLP cannot be represented and is refused.

C API. `library()` loads libwhisper from the pywhispercpp wheel (`pywhispercpp.libs/` on Linux, next
to its own libggml*, which it finds through its RPATH); its pybind module cannot return logits arrays
and has no encoder-output accessor, so we call the C functions directly. Every function used has its
argtypes and restype declared. ctypes releases the GIL around each call.

Encoder output. whisper.cpp has no accessor for it. The encoder graph's last tensor (after ln_post),
`whisper_state::embd_enc`, stays allocated in the encoder scheduler's buffer after `whisper_encode*`
(the cross-attention graph reads it through a view). `EncoderReadout` finds it, version-independent
in the state's layout but dependent on two facts checked at run time:
  * the ggml_tensor layout (type@0, buffer@8, ne@16, nb@48, data@248, name@256; 336 bytes, ggml 0.13):
    verified once against a tensor made by the loaded libggml-base itself (`check_tensor_layout`);
  * `embd_enc` is the pointer field right after `embd_conv` in whisper_state (true since whisper.cpp
    1.5): the state is scanned for a pointer to a tensor named "embd_conv", reading memory only through
    /proc/self/mem (an invalid address is an error, never a crash); the next field must point to an
    F32, contiguous [n_audio_ctx, d_model] tensor with a buffer, else `EncoderReadoutError` says why.
The values are then copied with ggml_backend_tensor_get (libggml-base), as whisper.cpp itself reads
tensors. Linux only (/proc/self/mem).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import os
import struct
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = 0x67676D6C  # "ggml", GGML_FILE_MAGIC
N_FFT = 201  # whisper's 400-point FFT: 201 frequency bins (filters.n_fft)
FTYPE_F32, FTYPE_F16 = 0, 1  # ggml_ftype ALL_F32, MOSTLY_F16
TTYPE_F32, TTYPE_F16 = 0, 1  # GGML_TYPE_F32, GGML_TYPE_F16
_NUMPY_TYPE = {TTYPE_F32: "<f4", TTYPE_F16: "<f2"}
HPARAMS = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
           "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype")
MLP_RATIO = 4  # whisper.cpp: mlp.0 is [4*n_state, n_state], whatever the checkpoint's config says
DISTRIBUTION = "pywhispercpp"


# ---------------------------------------------------------------------------------------------------
# HF (transformers) names -> OpenAI names, tensors as whisper.cpp declares them


_LAYER_PARTS = {  # HF sub-name in a layer -> OpenAI sub-name in a block
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
}
_TOP = {
    "model.encoder.conv1.weight": "encoder.conv1.weight", "model.encoder.conv1.bias": "encoder.conv1.bias",
    "model.encoder.conv2.weight": "encoder.conv2.weight", "model.encoder.conv2.bias": "encoder.conv2.bias",
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    "model.encoder.layer_norm.weight": "encoder.ln_post.weight", "model.encoder.layer_norm.bias": "encoder.ln_post.bias",
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    "model.decoder.layer_norm.weight": "decoder.ln.weight", "model.decoder.layer_norm.bias": "decoder.ln.bias",
}


def openai_name(hf_name: str) -> str:
    """`model.encoder.layers.0.self_attn.q_proj.weight` -> `encoder.blocks.0.attn.query.weight`."""
    if hf_name in _TOP:
        return _TOP[hf_name]
    parts = hf_name.split(".")
    if len(parts) >= 6 and parts[0] == "model" and parts[1] in ("encoder", "decoder") and parts[2] == "layers":
        inner, leaf = ".".join(parts[4:-1]), parts[-1]
        if inner in _LAYER_PARTS and leaf in ("weight", "bias"):
            return f"{parts[1]}.blocks.{parts[3]}.{_LAYER_PARTS[inner]}.{leaf}"
    raise ValueError(f"{hf_name}: no whisper.cpp tensor for this weight")


def file_hparams(config, ftype: int = FTYPE_F16) -> dict[str, int]:
    """The header whisper.cpp reads, from the family config (arena.families.whisper.Config)."""
    return {
        "n_vocab": config.vocab_size, "n_audio_ctx": config.max_source_positions, "n_audio_state": config.d_model,
        "n_audio_head": config.encoder_attention_heads, "n_audio_layer": config.encoder_layers,
        "n_text_ctx": config.max_target_positions, "n_text_state": config.d_model,
        "n_text_head": config.decoder_attention_heads, "n_text_layer": config.decoder_layers,
        "n_mels": config.num_mel_bins, "ftype": ftype,
    }


def f16_tensor(name: str, ndim: int) -> bool:
    """Whether whisper.cpp declares a tensor F16 in a MOSTLY_F16 file: the conv kernels (its `vtype`) and
    every matrix (`wtype`): attention and MLP weights and the token embedding. Not the position tables,
    LayerNorms or biases (the conv biases are 2-D, [d_model, 1], and F32)."""
    return name.endswith(".weight") and ndim >= 2 and "positional_embedding" not in name


def pad_mlp(config) -> dict[str, int]:
    """Which MLPs are zero-padded to whisper.cpp's 4*d_model: {"encoder": ffn, ...} (empty if none)."""
    width = MLP_RATIO * config.d_model
    padded = {}
    for side, ffn in (("encoder", config.encoder_ffn_dim), ("decoder", config.decoder_ffn_dim)):
        if ffn > width:
            raise ValueError(f"{side}_ffn_dim {ffn} > {MLP_RATIO}*d_model ({width}): whisper.cpp's MLP is fixed at {width} units")
        if ffn < width:
            padded[side] = ffn
    return padded


def ggml_tensors(config, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our official-named weights -> whisper.cpp's tensors (OpenAI names, whisper.cpp's shapes), float32
    (`write_model` stores them as the file's ftype says)."""
    width = MLP_RATIO * config.d_model
    pad_mlp(config)  # refuses a wider MLP
    out: dict[str, np.ndarray] = {}
    for hf_name, array in weights.items():
        name = openai_name(hf_name)
        array = np.asarray(array, dtype=np.float32)
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            array = array.reshape(-1, 1)  # ggml [1, n_state]
        elif name.endswith(("mlp.0.weight", "mlp.0.bias")) and array.shape[0] < width:
            array = np.concatenate([array, np.zeros((width - array.shape[0], *array.shape[1:]), np.float32)])
        elif name.endswith("mlp.2.weight") and array.shape[1] < width:
            array = np.concatenate([array, np.zeros((array.shape[0], width - array.shape[1]), np.float32)], axis=1)
        out[name] = np.ascontiguousarray(array)
    expected = 11 + 15 * config.encoder_layers + 24 * config.decoder_layers
    if len(out) != expected:
        raise ValueError(f"{len(out)} tensors for whisper.cpp, expected {expected} (a weight is missing or extra)")
    return out


# ---------------------------------------------------------------------------------------------------
# The file


@dataclass
class ModelFile:
    hparams: dict[str, int]
    n_mel: int
    n_fft: int
    filters: np.ndarray  # [n_mel, n_fft] float32
    vocab: list[bytes]
    tensors: dict[str, np.ndarray]  # numpy shapes (ggml dims reversed), float32 or float16 as stored
    ttypes: dict[str, int]


def write_model(path: Path, hparams: dict[str, int], tensors: dict[str, np.ndarray], n_fft: int = N_FFT) -> None:
    """The legacy GGML file: header, zero filters, empty vocab, then every tensor, F16 where `f16_tensor`
    says so in an ftype-1 file, else F32."""
    if tuple(hparams) != HPARAMS:
        raise ValueError(f"hparams must be, in order, {HPARAMS}; got {tuple(hparams)}")
    if hparams["ftype"] not in (FTYPE_F32, FTYPE_F16):
        raise ValueError(f"ftype {hparams['ftype']}: only 0 (all F32) and 1 (mostly F16) are written")
    n_mel = hparams["n_mels"]
    with open(path, "wb") as f:
        f.write(struct.pack("<I", MAGIC))
        f.write(struct.pack(f"<{len(HPARAMS)}i", *hparams.values()))
        f.write(struct.pack("<2i", n_mel, n_fft))
        np.zeros(n_mel * n_fft, "<f4").tofile(f)
        f.write(struct.pack("<i", 0))  # vocab count: whisper.cpp fills every id with a placeholder word
        for name, array in tensors.items():
            ttype = TTYPE_F16 if hparams["ftype"] == FTYPE_F16 and f16_tensor(name, array.ndim) else TTYPE_F32
            data = np.ascontiguousarray(np.asarray(array, np.float32).astype(_NUMPY_TYPE[ttype]))
            encoded = name.encode()
            dims = data.shape[::-1]  # ggml order: the fastest dimension first
            f.write(struct.pack(f"<3i{len(dims)}i", len(dims), len(encoded), ttype, *dims))
            f.write(encoded)
            data.tofile(f)


def read_model(path: Path) -> ModelFile:
    """Read a legacy GGML whisper file back (F32 and F16 tensors, returned in their stored type)."""
    raw = Path(path).read_bytes()
    pos = 0

    def ints(n: int, fmt: str = "i") -> tuple[int, ...]:
        nonlocal pos
        values = struct.unpack_from(f"<{n}{fmt}", raw, pos)
        pos += 4 * n
        return values

    (magic,) = ints(1, "I")
    if magic != MAGIC:
        raise ValueError(f"{path}: bad magic {magic:#x}")
    hparams = dict(zip(HPARAMS, ints(len(HPARAMS)), strict=True))
    n_mel, n_fft = ints(2)
    filters = np.frombuffer(raw, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft).copy()
    pos += 4 * n_mel * n_fft
    (count,) = ints(1)
    vocab = []
    for _ in range(count):
        (length,) = ints(1, "I")
        vocab.append(raw[pos:pos + length])
        pos += length
    tensors, ttypes = {}, {}
    while pos < len(raw):
        n_dims, name_len, ttype = ints(3)
        dims = ints(n_dims)
        name = raw[pos:pos + name_len].decode()
        pos += name_len
        if ttype not in _NUMPY_TYPE:
            raise ValueError(f"{path}: {name} has ttype {ttype}; only F32 and F16 are read")
        count, dtype = int(np.prod(dims)), np.dtype(_NUMPY_TYPE[ttype])
        tensors[name] = np.frombuffer(raw, dtype, count, pos).reshape(dims[::-1]).copy()
        ttypes[name] = ttype
        pos += dtype.itemsize * count
    return ModelFile(hparams, n_mel, n_fft, filters, vocab, tensors, ttypes)


# ---------------------------------------------------------------------------------------------------
# The C API


class WhisperAheads(ctypes.Structure):
    _fields_ = [("n_heads", ctypes.c_size_t), ("heads", ctypes.c_void_p)]


class ContextParams(ctypes.Structure):
    """struct whisper_context_params (whisper.h; unchanged from 1.5 to 1.8)."""

    _fields_ = [
        ("use_gpu", ctypes.c_bool),
        ("flash_attn", ctypes.c_bool),
        ("gpu_device", ctypes.c_int),
        ("dtw_token_timestamps", ctypes.c_bool),
        ("dtw_aheads_preset", ctypes.c_int),
        ("dtw_n_top", ctypes.c_int),
        ("dtw_aheads", WhisperAheads),
        ("dtw_mem_size", ctypes.c_size_t),
    ]


class GgmlInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


_P, _I, _SZ = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
_WHISPER_FUNCTIONS = {  # name: (argtypes, restype)
    "whisper_version": ([], ctypes.c_char_p),
    "whisper_context_default_params": ([], ContextParams),
    "whisper_init_from_file_with_params_no_state": ([ctypes.c_char_p, ContextParams], _P),
    "whisper_init_state": ([_P], _P),
    "whisper_set_mel_with_state": ([_P, _P, _P, _I, _I], _I),
    "whisper_encode_with_state": ([_P, _P, _I, _I], _I),
    "whisper_decode_with_state": ([_P, _P, _P, _I, _I, _I], _I),
    "whisper_get_logits_from_state": ([_P], ctypes.POINTER(ctypes.c_float)),
    "whisper_n_vocab": ([_P], _I),
    "whisper_n_text_ctx": ([_P], _I),
    "whisper_n_audio_ctx": ([_P], _I),
    "whisper_model_n_audio_state": ([_P], _I),
    "whisper_free_state": ([_P], None),
    "whisper_free": ([_P], None),
}
_GGML_FUNCTIONS = {
    "ggml_backend_tensor_get": ([_P, _P, _SZ, _SZ], None),
    "ggml_nbytes": ([_P], _SZ),
    "ggml_is_contiguous": ([_P], ctypes.c_bool),
    "ggml_init": ([GgmlInitParams], _P),
    "ggml_free": ([_P], None),
    "ggml_new_tensor_2d": ([_P, _I, ctypes.c_int64, ctypes.c_int64], _P),
    "ggml_set_name": ([_P, ctypes.c_char_p], _P),
    "ggml_tensor_overhead": ([], _SZ),
}


@dataclass(frozen=True)
class Library:
    whisper: ctypes.CDLL
    ggml_base: ctypes.CDLL
    whisper_path: Path
    version: str  # whisper_version()
    distribution_version: str  # pywhispercpp


def _package_dirs() -> list[Path]:
    spec = importlib.util.find_spec(DISTRIBUTION)  # locates the package without importing its pybind module
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{DISTRIBUTION} is not installed (pip install {DISTRIBUTION}): its wheel ships libwhisper")
    package = Path(next(iter(spec.submodule_search_locations)))
    # auditwheel (Linux) puts the libraries in <site>/pywhispercpp.libs, delocate (macOS) in pywhispercpp/.dylibs
    return [package.parent / f"{DISTRIBUTION}.libs", package / ".dylibs", package.parent]


def _find(dirs: list[Path], stem: str) -> Path:
    for folder in dirs:
        found = sorted(p for p in folder.glob(f"{stem}*") if p.suffix in (".so", ".dylib") or ".so." in p.name)
        if found:
            return found[0]
    raise RuntimeError(f"no {stem}*.so / .dylib in {', '.join(str(d) for d in dirs)}: the {DISTRIBUTION} wheel's native library is missing")


def _declare(lib: ctypes.CDLL, functions: dict, where: Path) -> None:
    for name, (argtypes, restype) in functions.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise RuntimeError(f"{where} does not export {name}") from None
        fn.argtypes, fn.restype = argtypes, restype


@functools.cache
def library() -> Library:
    """libwhisper (and its libggml-base) from the pywhispercpp wheel, with every function used declared."""
    dirs = _package_dirs()
    whisper_path = _find(dirs, "libwhisper")
    whisper = ctypes.CDLL(str(whisper_path))  # RTLD_LOCAL: its ggml does not meet llama.cpp's ggml
    ggml_path = _find([whisper_path.parent], "libggml-base")  # the one libwhisper links (same folder, RPATH $ORIGIN)
    ggml_base = ctypes.CDLL(str(ggml_path))  # already loaded as libwhisper's dependency: the same handle
    _declare(whisper, _WHISPER_FUNCTIONS, whisper_path)
    _declare(ggml_base, _GGML_FUNCTIONS, ggml_path)
    return Library(whisper, ggml_base, whisper_path, whisper.whisper_version().decode(), importlib.metadata.version(DISTRIBUTION))


def context_params(use_gpu: bool = False) -> ContextParams:
    """whisper.cpp's defaults, with flash attention off (its default is on) and the GPU off on the CPU."""
    params = library().whisper.whisper_context_default_params()
    params.use_gpu, params.flash_attn = use_gpu, False
    return params


class Context:
    """A loaded model (whisper_context without a state). States made from it keep it alive."""

    def __init__(self, path: Path, threads: int):
        self.lib = library()
        w = self.lib.whisper
        self.ptr = w.whisper_init_from_file_with_params_no_state(str(path).encode(), context_params())
        if not self.ptr:
            raise RuntimeError(f"whisper.cpp could not load {path} (see its log above)")
        self._finalizer = weakref.finalize(self, w.whisper_free, self.ptr)
        self.threads = threads
        self.n_vocab = w.whisper_n_vocab(self.ptr)
        self.n_audio_ctx = w.whisper_n_audio_ctx(self.ptr)
        self.n_text_ctx = w.whisper_n_text_ctx(self.ptr)
        self.d_model = w.whisper_model_n_audio_state(self.ptr)

    def state(self) -> State:
        return State(self)


class State:
    """One whisper_state: one sequence (mel, encoder output, cross and self-attention caches, logits)."""

    def __init__(self, context: Context):
        self.context, self.lib = context, context.lib.whisper
        self.ptr = self.lib.whisper_init_state(context.ptr)
        if not self.ptr:
            raise RuntimeError("whisper_init_state failed (see whisper.cpp's log above)")
        self._finalizer = weakref.finalize(self, self.lib.whisper_free_state, self.ptr)
        self._mel = None

    def set_mel(self, mel: np.ndarray) -> None:
        """mel [n_mels, n_frames] float32, HF's input_features[b]: whisper.cpp reads data[mel*n_len + frame]."""
        self._mel = np.ascontiguousarray(mel, dtype=np.float32)
        n_mel, n_len = self._mel.shape
        if self.lib.whisper_set_mel_with_state(self.context.ptr, self.ptr, self._mel.ctypes.data, n_len, n_mel):
            raise RuntimeError(f"whisper_set_mel_with_state refused {n_mel} mel bins (see whisper.cpp's log)")

    def encode(self) -> None:
        if self.lib.whisper_encode_with_state(self.context.ptr, self.ptr, 0, self.context.threads):
            raise RuntimeError("whisper_encode_with_state failed")

    def decode(self, tokens_ptr: int, n_tokens: int, n_past: int) -> None:
        """Decode n_tokens int32 ids at `tokens_ptr` after the first n_past cached positions (whisper.cpp
        drops every cache entry from n_past on first, so a repeated call sees the same cache)."""
        if self.lib.whisper_decode_with_state(self.context.ptr, self.ptr, tokens_ptr, n_tokens, n_past, self.context.threads):
            raise RuntimeError("whisper_decode_with_state failed")

    def logits(self, n_tokens: int) -> np.ndarray:
        """A copy of state->logits [n_tokens, n_vocab]. Only the last row is written by whisper_decode
        (its batch flags only the last token); the other rows are stale."""
        ptr = self.lib.whisper_get_logits_from_state(self.ptr)
        return np.ctypeslib.as_array(ptr, shape=(n_tokens, self.context.n_vocab)).copy()


# ---------------------------------------------------------------------------------------------------
# Reading the encoder output out of a whisper_state

TENSOR_SIZE = 336  # sizeof(struct ggml_tensor), ggml 0.13 (x86-64 / arm64)
OFF_TYPE, OFF_BUFFER, OFF_NE, OFF_NB, OFF_DATA, OFF_NAME, NAME_LEN = 0, 8, 16, 48, 248, 256, 64
STATE_SCAN_BYTES = 1 << 20  # whisper_state is ~45 KB in 1.8 (8 decoders with an mt19937 each)


class EncoderReadoutError(RuntimeError):
    pass


class _Memory:
    """This process's memory through /proc/self/mem: reading an unmapped address fails with OSError."""

    def __init__(self):
        if not sys.platform.startswith("linux"):
            raise EncoderReadoutError(f"reading whisper.cpp's encoder output needs /proc/self/mem (Linux); this is {sys.platform}")
        try:
            self.fd = os.open("/proc/self/mem", os.O_RDONLY)
        except OSError as err:
            raise EncoderReadoutError(f"cannot open /proc/self/mem to read whisper.cpp's encoder output: {err}") from None
        weakref.finalize(self, os.close, self.fd)

    def read(self, address: int, size: int) -> bytes | None:
        if not 4096 <= address < 1 << 47:
            return None
        try:
            data = os.pread(self.fd, size, address)
        except (OSError, OverflowError):
            return None
        return data if len(data) == size else None


def _name(raw: bytes) -> bytes:
    return raw[OFF_NAME:OFF_NAME + NAME_LEN].split(b"\0", 1)[0]


def check_tensor_layout(lib: Library) -> None:
    """Make a tensor with the loaded libggml-base and check that our offsets read it back."""
    g = lib.ggml_base
    overhead = g.ggml_tensor_overhead()
    ctx = g.ggml_init(GgmlInitParams(4 * overhead, None, True))
    if not ctx:
        raise EncoderReadoutError("ggml_init failed")
    try:
        t = g.ggml_new_tensor_2d(ctx, 0, 7, 5)
        g.ggml_set_name(t, b"arena_layout_probe")
        raw = ctypes.string_at(t, TENSOR_SIZE)
        type_, = struct.unpack_from("<i", raw, OFF_TYPE)
        ne = struct.unpack_from("<4q", raw, OFF_NE)
        nb = struct.unpack_from("<4Q", raw, OFF_NB)
        data, = struct.unpack_from("<Q", raw, OFF_DATA)
        seen = (type_, ne, nb, data, _name(raw), g.ggml_nbytes(t))
        expected = (0, (7, 5, 1, 1), (4, 28, 140, 140), 0, b"arena_layout_probe", 140)
        if seen != expected:
            raise EncoderReadoutError(f"{lib.whisper_path.name}: ggml_tensor layout differs from ggml 0.13's (read {seen}, expected {expected})")
    finally:
        g.ggml_free(ctx)


class EncoderReadout:
    """Copies `whisper_state::embd_enc` (the encoder output after ln_post) out of a state."""

    def __init__(self, lib: Library):
        self.lib, self.memory = lib, _Memory()
        check_tensor_layout(lib)
        self.slot: int | None = None  # offset of embd_conv in whisper_state, the same for every state

    def _tensor(self, address: int) -> bytes | None:
        return self.memory.read(address, TENSOR_SIZE)

    def _word(self, address: int) -> int | None:
        raw = self.memory.read(address, 8)
        return struct.unpack("<Q", raw)[0] if raw else None

    def _find_slot(self, state: int) -> int:
        for start in range(0, STATE_SCAN_BYTES, 4096):
            chunk = self.memory.read(state + start, 4096)
            if chunk is None:
                break
            for i, value in enumerate(struct.unpack("<512Q", chunk)):
                if value % 8 or not 4096 <= value < 1 << 47:
                    continue
                name = self.memory.read(value + OFF_NAME, NAME_LEN)
                if name is not None and name.split(b"\0", 1)[0] == b"embd_conv":
                    return start + 8 * i
        raise EncoderReadoutError("no pointer to the tensor 'embd_conv' in whisper_state: this libwhisper's state differs from 1.8's")

    def read(self, state: State) -> np.ndarray:
        """The encoder output of the state's last encode, [n_audio_ctx, d_model] float32."""
        ctx = state.context
        if self.slot is None:
            self.slot = self._find_slot(state.ptr)
        conv = self._word(state.ptr + self.slot)
        enc = self._word(state.ptr + self.slot + 8)
        conv_raw = self._tensor(conv) if conv else None
        if conv_raw is None or _name(conv_raw) != b"embd_conv":
            raise EncoderReadoutError(f"whisper_state+{self.slot} no longer points to 'embd_conv'")
        raw = self._tensor(enc) if enc else None
        if raw is None:
            raise EncoderReadoutError("the field after embd_conv in whisper_state is not a readable tensor pointer")
        type_, = struct.unpack_from("<i", raw, OFF_TYPE)
        buffer, = struct.unpack_from("<Q", raw, OFF_BUFFER)
        ne = struct.unpack_from("<4q", raw, OFF_NE)
        data, = struct.unpack_from("<Q", raw, OFF_DATA)
        expected_ne = (ctx.d_model, ctx.n_audio_ctx, 1, 1)
        problems = [p for p, bad in (
            (f"type {type_} is not F32", type_ != 0),
            (f"ne {ne} is not {expected_ne}", ne != expected_ne),
            ("it has no backend buffer", not buffer),
            ("it has no data", not data),
            (f"it is named {_name(raw)!r}", _name(raw) == b"embd_conv"),
        ) if bad]
        if not problems and not self.lib.ggml_base.ggml_is_contiguous(enc):
            problems.append("it is not contiguous")
        if problems:
            raise EncoderReadoutError("whisper_state's field after embd_conv is not the encoder output: " + "; ".join(problems))
        out = np.empty((ctx.n_audio_ctx, ctx.d_model), np.float32)
        if self.lib.ggml_base.ggml_nbytes(enc) != out.nbytes:
            raise EncoderReadoutError(f"embd_enc holds {self.lib.ggml_base.ggml_nbytes(enc)} bytes, expected {out.nbytes}")
        self.lib.ggml_base.ggml_backend_tensor_get(enc, out.ctypes.data, 0, out.nbytes)
        return out
