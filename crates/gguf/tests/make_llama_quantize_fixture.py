#!/usr/bin/env python3
"""Writes fixtures/llama_quantize_q8_0.txt: what llama.cpp's `llama-quantize` makes of the real
Gemma3 270M Q4_K_M checkpoint when asked for Q8_0, one line per tensor:

    name=<tensor> type=<ggml type name> sha256=<hex of the tensor's bytes>

The Q8_0 file is the one benches/llamacpp_build.sh makes (llama.cpp vendored in
llama-cpp-python 0.3.36: `llama-quantize --allow-requantize IN OUT Q8_0`). The test
`writer::requantizing_matches_llama_quantize` requantizes the checkpoint with our
`q8_0::quantize_row_ref` and compares, tensor by tensor.

Run:  python3 crates/gguf/tests/make_llama_quantize_fixture.py [Q8_0.gguf]
(needs `pip install gguf`).
"""
import hashlib
import os
import sys

import gguf

path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
    "~/.cache/burn-int8-llamacpp/gemma-3-270m-Q8_0.gguf")
reader = gguf.GGUFReader(path)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "llama_quantize_q8_0.txt")
with open(out, "w") as f:
    f.write("# llama-quantize (llama-cpp-python 0.3.36's llama.cpp) Q8_0 of gemma-3-270m-q4_k_m.gguf;\n")
    f.write("# made by make_llama_quantize_fixture.py\n")
    for t in reader.tensors:
        digest = hashlib.sha256(bytes(t.data.tobytes())).hexdigest()
        f.write(f"name={t.name} type={t.tensor_type.name} sha256={digest}\n")
print(f"wrote {out} ({len(reader.tensors)} tensors)")
