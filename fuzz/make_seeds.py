#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) and the two vocabulary
fixtures the harness embeds (fuzz/fixtures/*.vocab.json). Python standard library only;
deterministic: running it twice writes the same bytes.

    python3 fuzz/make_seeds.py

What it writes, and why each seed is shaped the way it is:

* fixtures/loader.vocab.json: a 32-token SentencePiece vocabulary (the `tokenizer.vocab.json`
  format of crates/tokenizer/src/vocab.rs). The model seeds below have a 32-row embedding, so a
  loaded seed model passes `check_vocabulary` and can generate.
* fixtures/tokenizer.vocab.json: every byte token `<0x00>`..`<0xFF>` plus a few merges, so any
  text encodes without the unknown token (the `tokenizer` target's round trip needs that).
* corpus/gguf_reader: GGUF v3 and v2 files with every metadata value type (nested and empty
  arrays included), one tensor of every dequantizable ggml type (blocks taken from
  crates/gguf/tests/fixtures/synthetic.bin), an unsupported type, 0-D and 4-D tensors; an empty
  GGUF; and the tiny Gemma3 GGUF below.
* corpus/gguf_model: a 1-layer Gemma3 GGUF (32 tokens, hidden 32) whose tensors use Q8_0, Q4_0,
  Q4_1, Q5_0, Q5_1, F16, BF16 and F32, with its tokenizer in `tokenizer.ggml.*`.
* corpus/hf_loader: `[u16 LE json length][config.json][model.safetensors]` of tiny Gemma3s
  (F32 with 2 layers, BF16 and F16 with 1 layer and RoPE scaling).
* corpus/preset_loader: `[u16 LE json length][config.json][model.bpk]` of tiny presets (float32
  and int8 Burnpack records, written here byte for byte: header, CBOR metadata, 256-aligned
  tensors; see burn-store's `burnpack` module).
* corpus/gemma3_config: HF `config.json` texts (the real gemma-3-270m one, the tiny ones, one
  with RoPE scaling, one with only the required keys).
* corpus/tokenizer: mode byte then payload: 0 = a vocabulary JSON, 1 = text for the fixed
  vocabulary, 2 = a HF `tokenizer.json` (crates/tokenizer/tests/fixtures/tiny_tokenizer.json).
"""

import json
import random
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = HERE / "corpus"
FIXTURES = HERE / "fixtures"
GGUF_FIXTURES = ROOT / "crates" / "gguf" / "tests" / "fixtures"
TOKENIZER_FIXTURES = ROOT / "crates" / "tokenizer" / "tests" / "fixtures"
GEMMA3_FIXTURES = ROOT / "crates" / "gemma3" / "tests" / "fixtures" / "gemma3-270m"

SPACE = "\u2581"

# --------------------------------------------------------------------------- vocabularies

CONTROL, UNKNOWN, NORMAL, USER_DEFINED, BYTE = 3, 2, 1, 4, 6


def specials():
    return [
        ("<pad>", CONTROL),
        ("<eos>", CONTROL),
        ("<bos>", CONTROL),
        ("<unk>", UNKNOWN),
        ("<start_of_turn>", CONTROL),
        ("<end_of_turn>", CONTROL),
        ("\n", USER_DEFINED),
    ]


def loader_pieces():
    """Exactly 32 tokens: the vocabulary of every seed model."""
    pieces = specials()
    pieces += [(p, NORMAL) for p in [SPACE, "a", "b", "c", "ab", "bc", SPACE + "a", SPACE + "ab", "aa", "d", "cd", SPACE + "b"]]
    pieces += [("<0x41>", BYTE), ("<0xC3>", BYTE), ("<0xA9>", BYTE)]
    pieces += [(p, NORMAL) for p in ["e", "h", "i", "l", "o", "r", "s", "t", "th", "he"]]
    assert len(pieces) == 32, len(pieces)
    return pieces


def roundtrip_pieces():
    pieces = specials() + [("\t\t", USER_DEFINED)]
    pieces += [(f"<0x{b:02X}>", BYTE) for b in range(256)]
    normal = [SPACE] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    normal += ["ab", "bc", "cd", "aa", "th", "he", "the", SPACE + "a", SPACE + "ab", SPACE + "t", SPACE + "th", SPACE + "the", "\u00e9", "\u20ac", "in", "ing"]
    pieces += [(p, NORMAL) for p in normal]
    return pieces


def vocab_json(pieces, add_space_prefix=False):
    tokens = [p for p, _ in pieces]
    types = [t for _, t in pieces]
    scores = [0.0 if t != NORMAL else -float(i) / 4.0 for i, (_, t) in enumerate(pieces)]
    value = {
        "format": "burn-int8-tokenizer/vocab",
        "version": 1,
        "tokens": tokens,
        "scores": scores,
        "token_types": types,
        "bos_id": 2,
        "eos_id": 1,
        "unknown_id": 3,
        "padding_id": 0,
        "add_bos": True,
        "add_space_prefix": add_space_prefix,
    }
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- model configs


class Config:
    def __init__(self, vocab=32, hidden=8, ffn=16, layers=2, heads=2, kv_heads=1, head_dim=4, window=4, pattern=2, scaling=1.0):
        self.vocab, self.hidden, self.ffn, self.layers = vocab, hidden, ffn, layers
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.window, self.pattern, self.scaling = window, pattern, scaling

    def is_global(self, layer):
        return layer % self.pattern == self.pattern - 1

    def hf_json(self, extra=None, model_type="gemma3_text", activation="gelu_pytorch_tanh"):
        """What `Gemma3Config::to_hf_json` writes (plus `extra` keys)."""
        value = {
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": model_type,
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "query_pre_attn_scalar": float(self.head_dim),
            "sliding_window": self.window,
            "sliding_window_pattern": self.pattern,
            "layer_types": ["full_attention" if self.is_global(i) else "sliding_attention" for i in range(self.layers)],
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": None if self.scaling == 1.0 else {"rope_type": "linear", "factor": self.scaling},
            "rms_norm_eps": 1e-06,
            "max_position_embeddings": 64,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "pad_token_id": 0,
            "hidden_activation": activation,
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
        }
        if extra:
            value.update(extra)
        return json.dumps(value, indent=1).encode()

    def hf_tensors(self):
        """(HF name, HF row-major shape) of every tensor, as `load::expected_tensors` lists them."""
        h, f, q, kv, d = self.hidden, self.ffn, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.head_dim
        out = [("model.embed_tokens.weight", [self.vocab, h]), ("model.norm.weight", [h])]
        for i in range(self.layers):
            p = f"model.layers.{i}."
            out += [
                (p + "input_layernorm.weight", [h]),
                (p + "post_attention_layernorm.weight", [h]),
                (p + "pre_feedforward_layernorm.weight", [h]),
                (p + "post_feedforward_layernorm.weight", [h]),
                (p + "self_attn.q_proj.weight", [q, h]),
                (p + "self_attn.k_proj.weight", [kv, h]),
                (p + "self_attn.v_proj.weight", [kv, h]),
                (p + "self_attn.o_proj.weight", [h, q]),
                (p + "self_attn.q_norm.weight", [d]),
                (p + "self_attn.k_norm.weight", [d]),
                (p + "mlp.gate_proj.weight", [f, h]),
                (p + "mlp.up_proj.weight", [f, h]),
                (p + "mlp.down_proj.weight", [h, f]),
            ]
        return out


def values(n, seed):
    """Small deterministic weights (the formula of the gemma3 tests)."""
    return [(((i * 7919 + seed * 104729) % 101) / 101.0 - 0.5) * 0.2 for i in range(n)]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def f32_bytes(xs):
    return struct.pack(f"<{len(xs)}f", *xs)


def f16_bytes(xs):
    return struct.pack(f"<{len(xs)}e", *xs)


def bf16_bytes(xs):
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", x))[0])[2:] for x in xs)


# --------------------------------------------------------------------------- safetensors


def safetensors(tensors):
    """tensors: (name, dtype, shape, raw). Contiguous data, header padded to 8 bytes."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(raw for _, _, _, raw in tensors)


def hf_checkpoint(config, dtype):
    encode = {"F32": f32_bytes, "F16": f16_bytes, "BF16": bf16_bytes}[dtype]
    return safetensors([(name, dtype, shape, encode(values(numel(shape), k))) for k, (name, shape) in enumerate(config.hf_tensors())])


def with_json(json_bytes, payload):
    assert len(json_bytes) < 1 << 16
    return struct.pack("<H", len(json_bytes)) + json_bytes + payload


# --------------------------------------------------------------------------- burnpack (CBOR)


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | extra]) + n.to_bytes(width, "big")
    raise ValueError(n)


def cbor(value):
    if isinstance(value, bool) or value is None:
        raise TypeError(value)
    if isinstance(value, int):
        assert value >= 0
        return cbor_head(0, value)
    if isinstance(value, str):
        raw = value.encode()
        return cbor_head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return cbor_head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


def align(n, a):
    return (n + a - 1) // a * a


def burnpack(tensors):
    """tensors: (name, dtype, shape, raw). Burnpack v1: "NRUB" magic (0x4255524E LE), u16
    version, u32 metadata size, CBOR metadata {tensors: {name: {dtype, shape, data_offsets}}},
    data section at the next multiple of 256, each tensor at a 256-aligned offset in it."""
    descriptors, offset, placed = {}, 0, []
    for name, dtype, shape, raw in sorted(tensors):
        start = align(offset, 256)
        descriptors[name] = {"dtype": dtype, "shape": shape, "data_offsets": [start, start + len(raw)]}
        placed.append((start, raw))
        offset = start + len(raw)
    meta = cbor({"tensors": descriptors})
    out = bytearray(struct.pack("<IHI", 0x4255524E, 1, len(meta)) + meta)
    data_start = align(len(out), 256)
    out += bytes(data_start - len(out))
    for start, raw in placed:
        out += bytes(data_start + start - len(out))
        out += raw
    return bytes(out)


def burn_tensors(config, int8, dtype="F32"):
    """The record of a Gemma3 preset: Burn paths, Burn layouts ([in, out] projections)."""
    encode = {"F32": f32_bytes, "F16": f16_bytes, "BF16": bf16_bytes}[dtype]
    h, f, q, kv, d = config.hidden, config.ffn, config.heads * config.head_dim, config.kv_heads * config.head_dim, config.head_dim
    out, k = [], 0

    def float_tensor(name, shape):
        nonlocal k
        k += 1
        out.append((name, dtype, shape, encode(values(numel(shape), k))))

    def weight(prefix, shape, scale_len):
        nonlocal k
        k += 1
        if int8:
            rng = random.Random(k)
            out.append((f"{prefix}.Int8.weight.values", "I8", shape, bytes(rng.randrange(256) for _ in range(numel(shape)))))
            out.append((f"{prefix}.Int8.weight.scale", "F32", [scale_len], f32_bytes([100.0 + i for i in range(scale_len)])))
        else:
            out.append((f"{prefix}.Float.weight", dtype, shape, encode(values(numel(shape), k))))

    weight("embed_tokens.shards.0", [config.vocab, h], config.vocab)
    float_tensor("norm.weight", [h])
    for i in range(config.layers):
        p = f"layers.{i}."
        for norm in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]:
            float_tensor(p + norm + ".weight", [h])
        float_tensor(p + "self_attn.q_norm.weight", [d])
        float_tensor(p + "self_attn.k_norm.weight", [d])
        weight(p + "self_attn.q_proj", [h, q], q)
        weight(p + "self_attn.k_proj", [h, kv], kv)
        weight(p + "self_attn.v_proj", [h, kv], kv)
        weight(p + "self_attn.o_proj", [q, h], h)
        weight(p + "mlp.gate_proj", [h, f], f)
        weight(p + "mlp.up_proj", [h, f], f)
        weight(p + "mlp.down_proj", [f, h], h)
    return out


def preset_seed(config, precision, dtype="F32"):
    config_json = config.hf_json(extra={"burn_int8": {"precision": precision, "weights": "model.bpk"}})
    return with_json(config_json, burnpack(burn_tensors(config, precision == "int8", dtype)))


# --------------------------------------------------------------------------- GGUF

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", U64: "<Q", I64: "<q", F64: "<d"}

# ggml type id -> (name, values per block, bytes per block)
GGML = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    10: ("Q2_K", 256, 84),
    12: ("Q4_K", 256, 144),
    14: ("Q6_K", 256, 210),
    30: ("BF16", 1, 2),
}
GGML_ID = {name: i for i, (name, _, _) in GGML.items()}


def gguf_string(s):
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(vtype, value):
    if vtype in SCALAR:
        return struct.pack(SCALAR[vtype], value)
    if vtype == BOOL:
        return bytes([1 if value else 0])
    if vtype == STRING:
        return gguf_string(value)
    elem, items = value
    return struct.pack("<IQ", elem, len(items)) + b"".join(gguf_value(elem, x) for x in items)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: (key, type, value); tensors: (name, dims innermost first, ggml type id, raw)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, value in kvs:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset, placed = 0, []
    for name, dims, ggml_type, raw in tensors:
        _, block, size = GGML[ggml_type]
        n = numel(dims)
        assert (dims[0] if dims else 1) % block == 0 and len(raw) == n // block * size, (name, dims, len(raw))
        offset = align(offset, alignment)
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        placed.append((offset, raw))
        offset += len(raw)
    data_start = align(len(out), alignment)
    out += bytes(data_start - len(out))
    for start, raw in placed:
        out += bytes(data_start + start - len(out))
        out += raw
    return out


def synthetic_blocks():
    """The first block(s) of every case of crates/gguf/tests/fixtures/synthetic.bin, by type."""
    binary = (GGUF_FIXTURES / "synthetic.bin").read_bytes()
    blocks = {}
    for line in (GGUF_FIXTURES / "synthetic.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
        type_id, off, length = int(fields["type"]), int(fields["raw_off"]), int(fields["raw_len"])
        if type_id not in blocks:
            blocks[type_id] = binary[off : off + length]
    return blocks


def all_types_gguf(version, alignment_key):
    blocks = synthetic_blocks()
    kvs = [
        ("general.architecture", STRING, "fuzz"),
        ("general.name", STRING, "every value type"),
        ("test.u8", U8, 200),
        ("test.i8", I8, -100),
        ("test.u16", U16, 60000),
        ("test.i16", I16, -30000),
        ("test.u32", U32, 4000000000),
        ("test.i32", I32, -2000000000),
        ("test.f32", F32, 1.5),
        ("test.bool", BOOL, True),
        ("test.u64", U64, 1 << 40),
        ("test.i64", I64, -(1 << 40)),
        ("test.f64", F64, -2.25),
        ("test.string", STRING, "h\u00e9llo \u20ac"),
        ("test.array.u8", ARRAY, (U8, [0, 1, 255])),
        ("test.array.i32", ARRAY, (I32, [-1, 0, 1, 2147483647])),
        ("test.array.f32", ARRAY, (F32, [0.0, -1.0, 3.5])),
        ("test.array.string", ARRAY, (STRING, ["a", "", SPACE + "b"])),
        ("test.array.bool", ARRAY, (BOOL, [True, False])),
        ("test.array.u64", ARRAY, (U64, [0, (1 << 64) - 1])),
        ("test.array.i64", ARRAY, (I64, [-(1 << 63)])),
        ("test.array.f64", ARRAY, (F64, [1e300])),
        ("test.array.i16", ARRAY, (I16, [-5, 5])),
        ("test.array.empty", ARRAY, (U32, [])),
        ("test.array.nested", ARRAY, (ARRAY, [(U32, [1, 2]), (STRING, ["x"]), (ARRAY, [(I8, [-1])])])),
    ]
    if alignment_key:
        kvs.append(("general.alignment", U32, 64))
    tensors = []
    for type_id, raw in sorted(blocks.items()):
        name, block, size = GGML[type_id]
        if block == 1:
            n = min(len(raw) // size, 16)
            tensors.append((f"t.{name.lower()}", [n], type_id, raw[: n * size]))
        else:
            rows = 2 if block == 32 else 1
            tensors.append((f"t.{name.lower()}", [block, rows], type_id, raw[: rows * size]))
    rng = random.Random(10)
    tensors.append(("t.q2_k.unsupported", [256], GGML_ID["Q2_K"], bytes(rng.randrange(256) for _ in range(84))))
    tensors.append(("t.scalar", [], GGML_ID["F32"], f32_bytes([42.0])))
    tensors.append(("t.4d", [2, 2, 1, 3], GGML_ID["F16"], f16_bytes(values(12, 3))))
    tensors.append(("t.empty", [0, 4], GGML_ID["F32"], b""))
    return gguf(kvs, tensors, version=version, alignment=64 if alignment_key else 32)


def quant_blocks(kind, n_values, rng):
    """Random blocks of a ggml type whose dequantized values are all finite."""
    out = bytearray()
    for _ in range(n_values // 32):
        if kind == "Q8_0":
            out += struct.pack("<e", 0.01) + bytes(rng.randrange(256) for _ in range(32))
        elif kind == "Q4_0":
            out += struct.pack("<e", 0.02) + bytes(rng.randrange(256) for _ in range(16))
        elif kind == "Q4_1":
            out += struct.pack("<ee", 0.02, -0.1) + bytes(rng.randrange(256) for _ in range(16))
        elif kind == "Q5_0":
            out += struct.pack("<e", 0.01) + bytes(rng.randrange(256) for _ in range(20))
        elif kind == "Q5_1":
            out += struct.pack("<ee", 0.01, -0.15) + bytes(rng.randrange(256) for _ in range(20))
        else:
            raise ValueError(kind)
    return bytes(out)


def gemma3_gguf(config, kinds, scaling_key=False):
    """A Gemma3 GGUF: llama.cpp names, dims innermost first, norms stored as `w + 1`."""
    pieces = loader_pieces()
    kvs = [
        ("general.architecture", STRING, "gemma3"),
        ("general.name", STRING, "tiny"),
        ("gemma3.context_length", U32, 64),
        ("gemma3.embedding_length", U32, config.hidden),
        ("gemma3.block_count", U32, config.layers),
        ("gemma3.feed_forward_length", U32, config.ffn),
        ("gemma3.attention.head_count", U32, config.heads),
        ("gemma3.attention.head_count_kv", U32, config.kv_heads),
        ("gemma3.attention.key_length", U32, config.head_dim),
        ("gemma3.attention.value_length", U32, config.head_dim),
        ("gemma3.attention.sliding_window", U32, config.window),
        ("gemma3.rope.freq_base", F32, 1000000.0),
        ("gemma3.attention.layer_norm_rms_epsilon", F32, 1e-6),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, [p for p, _ in pieces])),
        ("tokenizer.ggml.scores", ARRAY, (F32, [-float(i) for i in range(len(pieces))])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [t for _, t in pieces])),
        ("tokenizer.ggml.bos_token_id", U32, 2),
        ("tokenizer.ggml.eos_token_id", U32, 1),
        ("tokenizer.ggml.unknown_token_id", U32, 3),
        ("tokenizer.ggml.padding_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_space_prefix", BOOL, False),
    ]
    if scaling_key:
        kvs.append(("gemma3.rope.scaling.factor", F32, 8.0))
    gguf_names = {
        "input_layernorm.weight": "attn_norm",
        "post_attention_layernorm.weight": "post_attention_norm",
        "pre_feedforward_layernorm.weight": "ffn_norm",
        "post_feedforward_layernorm.weight": "post_ffw_norm",
        "self_attn.q_proj.weight": "attn_q",
        "self_attn.k_proj.weight": "attn_k",
        "self_attn.v_proj.weight": "attn_v",
        "self_attn.o_proj.weight": "attn_output",
        "self_attn.q_norm.weight": "attn_q_norm",
        "self_attn.k_norm.weight": "attn_k_norm",
        "mlp.gate_proj.weight": "ffn_gate",
        "mlp.up_proj.weight": "ffn_up",
        "mlp.down_proj.weight": "ffn_down",
    }
    rng = random.Random(7)
    tensors = []
    for k, (hf, shape) in enumerate(config.hf_tensors()):
        if hf == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif hf == "model.norm.weight":
            name = "output_norm.weight"
        else:
            layer, suffix = hf[len("model.layers.") :].split(".", 1)
            name = f"blk.{layer}.{gguf_names[suffix]}.weight"
        dims = list(reversed(shape))
        n = numel(shape)
        if hf.endswith("norm.weight"):
            tensors.append((name, dims, GGML_ID["F32"], f32_bytes([1.0 + v for v in values(n, k)])))
            continue
        short = name.split(".")[-2]
        kind = kinds.get(short, "F32")
        if kind == "F32":
            raw = f32_bytes(values(n, k))
        elif kind == "F16":
            raw = f16_bytes(values(n, k))
        elif kind == "BF16":
            raw = bf16_bytes(values(n, k))
        else:
            raw = quant_blocks(kind, n, rng)
        tensors.append((name, dims, GGML_ID[kind], raw))
    return gguf(kvs, tensors)


# --------------------------------------------------------------------------- main


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    loader_vocab = vocab_json(loader_pieces())
    roundtrip_vocab = vocab_json(roundtrip_pieces())
    (FIXTURES / "loader.vocab.json").write_bytes(loader_vocab)
    (FIXTURES / "tokenizer.vocab.json").write_bytes(roundtrip_vocab)

    sizes = {}

    def add(target, name, data):
        sizes[f"{target}/{name}"] = write(target, name, data)

    # GGUF models: hidden 32 so that 32-value blocks fit a row.
    gguf_config = Config(vocab=32, hidden=32, ffn=64, layers=1, heads=2, kv_heads=1, head_dim=16, window=16, pattern=6)
    mixed = gemma3_gguf(
        gguf_config,
        {"token_embd": "Q8_0", "attn_q": "Q4_0", "attn_k": "Q4_1", "attn_v": "Q5_0", "attn_output": "Q5_1", "ffn_gate": "F16", "ffn_up": "BF16", "ffn_down": "Q8_0"},
    )
    plain = gemma3_gguf(Config(vocab=32, hidden=8, ffn=16, layers=2, heads=2, kv_heads=1, head_dim=4, window=4, pattern=6), {}, scaling_key=True)
    add("gguf_model", "gemma3-mixed-quant", mixed)
    add("gguf_model", "gemma3-f32-2layer-scaled", plain)

    add("gguf_reader", "all-types-v3", all_types_gguf(3, alignment_key=False))
    add("gguf_reader", "all-types-v2-align64", all_types_gguf(2, alignment_key=True))
    add("gguf_reader", "empty-v3", gguf([], []))
    add("gguf_reader", "gemma3-mixed-quant", mixed)

    tiny = Config()
    one_layer_scaled = Config(layers=1, scaling=8.0)
    add("hf_loader", "f32-2layer", with_json(tiny.hf_json(), hf_checkpoint(tiny, "F32")))
    add("hf_loader", "bf16-1layer", with_json(Config(layers=1).hf_json(model_type="gemma3"), hf_checkpoint(Config(layers=1), "BF16")))
    add("hf_loader", "f16-1layer-scaled", with_json(one_layer_scaled.hf_json(activation="gelu_new"), hf_checkpoint(one_layer_scaled, "F16")))

    add("preset_loader", "float32-2layer", preset_seed(tiny, "float32"))
    add("preset_loader", "int8-1layer", preset_seed(Config(layers=1), "int8"))
    add("preset_loader", "bf16-1layer", preset_seed(Config(layers=1), "float32", dtype="BF16"))

    add("gemma3_config", "gemma3-270m", (GEMMA3_FIXTURES / "hf-config.json").read_bytes())
    add("gemma3_config", "tiny-2layer", tiny.hf_json())
    add("gemma3_config", "tiny-scaled", one_layer_scaled.hf_json(model_type="gemma3", activation="gelu_new"))
    add("gemma3_config", "tiny-preset", tiny.hf_json(extra={"burn_int8": {"precision": "int8", "weights": "model.bpk", "weights_xxh3": "0123456789abcdef"}}))
    required = {
        "vocab_size": 32,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "query_pre_attn_scalar": 4,
        "sliding_window": 4,
    }
    add("gemma3_config", "required-keys-only", json.dumps(required).encode())

    add("tokenizer", "vocab-loader", b"\x00" + loader_vocab)
    add("tokenizer", "vocab-space-prefix", b"\x00" + vocab_json(loader_pieces(), add_space_prefix=True))
    add("tokenizer", "vocab-every-byte", b"\x00" + roundtrip_vocab)
    add("tokenizer", "hf-tiny", b"\x02" + (TOKENIZER_FIXTURES / "tiny_tokenizer.json").read_bytes())
    add("tokenizer", "text-ascii", b"\x01" + b"Hello world, ab abc  the theme\n\tcd aaa  b")
    add("tokenizer", "text-unicode", b"\x01" + "h\u00e9 \u20ac\U0001F600 \u2581 <bos>x<start_of_turn>user\nhi<end_of_turn>\t\t".encode())
    add("tokenizer", "text-invalid-utf8", b"\x01" + b"ab\xff\xfe\xc3(\xe2\x82 cd")

    total = sum(sizes.values())
    for name, size in sorted(sizes.items()):
        print(f"{size:8d}  {name}")
    print(f"{total:8d}  total")
    assert max(sizes.values()) <= 20 * 1024, "a seed over 20 KiB"
    assert total < 1 << 20


if __name__ == "__main__":
    main()
