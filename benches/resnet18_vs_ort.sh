#!/usr/bin/env bash
# ResNet-18 (224×224, BatchNorm folded, random weights) side by side: Burn float and our int8
# (Keras's scheme and Scheme::Sample) on flex (`examples/resnet18_speed.rs`), ONNX Runtime float and static per-channel int8
# (`benches/ort_resnet18.py`), the same 2 threads and batches, in alternating rounds.
# Appends one JSON line per (engine, precision, batch, round) to benches/resnet18_vs_ort.jsonl
# and prints the medians over rounds.
#   benches/resnet18_vs_ort.sh [ROUNDS] [BATCHES] [RUNS]      (default 3 1,8 10)
# Needs `pip install onnxruntime onnx`. Run it alone on the machine (under the shared lock).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
BATCHES="${2:-1,8}"
RUNS="${3:-10}"
THREADS=2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-int8-target}"
export RAYON_NUM_THREADS=$THREADS
cargo build --release --example resnet18_speed
BIN="$CARGO_TARGET_DIR/release/examples/resnet18_speed"
OUT=benches/resnet18_vs_ort.jsonl
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
# The model name alone ("AMD EPYC") does not tell Zen 3, 4 and 5 apart: family, model and the
# int8 instruction sets too.
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | xargs), $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'amx_int8|avx512_vnni|avx_vnni|avx2' | xargs)"
tag() { sed "s/}\$/, \"round\": $1, \"date\": \"$DATE\", \"cpu\": \"$CPU\"}/"; }
for round in $(seq 1 "$ROUNDS"); do
  # One process per precision: each holds only its own model.
  for precision in f32 int8 int8-sample; do
    "$BIN" "$BATCHES" "$RUNS" "$precision" | tag "$round" | tee -a "$OUT" "$WORK/rows.jsonl"
  done
  python3 benches/ort_resnet18.py --batches "$BATCHES" --runs "$RUNS" --threads $THREADS \
    --workdir "$WORK/onnx" | tag "$round" | tee -a "$OUT" "$WORK/rows.jsonl"
done
python3 - "$WORK/rows.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
med = {}
for r in rows:
    med.setdefault((r["engine"].split()[0], r["precision"], r["batch"]), []).append(r["median_ms"])
med = {k: statistics.median(v) for k, v in med.items()}
print("| batch | Burn f32 ms | our int8 ms (keras) | our int8 ms (sample) | sample / Burn f32 | ORT f32 ms | ORT int8 ms | keras vs ORT int8 | sample vs ORT int8 |")
print("|---|---|---|---|---|---|---|---|---|")
for batch in sorted({k[2] for k in med}):
    bf, bi = med[("burn-flex", "f32", batch)], med[("burn-flex", "int8", batch)]
    bs = med.get(("burn-flex", "int8-sample", batch), float("nan"))
    of, oi = med[("onnxruntime", "f32", batch)], med[("onnxruntime", "int8", batch)]
    print(f"| {batch} | {bf:.1f} | {bi:.1f} | {bs:.1f} | {bf / bs:.2f}× | {of:.1f} | {oi:.1f} | {oi / bi:.2f}× | {oi / bs:.2f}× |")
PY
