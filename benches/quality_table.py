#!/usr/bin/env python3
"""docs/quality.md's table from benches/quality.jsonl: one row per format of one run.
   python3 benches/quality_table.py benches/quality.jsonl [RUN]   (default: the newest run)"""
import json
import sys

lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
run = sys.argv[2] if len(sys.argv) > 2 else lines[-1]["run"]
rows = [line for line in lines if line["run"] == run]
print(f"run {run}, {rows[0]['cpu']}, context {rows[0]['context']}")
print("| format | perplexity | vs its float | KL mean / p99 (nats) | top-1 agreement | parameters (MB) |")
print("|---|---|---|---|---|---|")
for row in rows:
    size = row["int8"].get("parameter_bytes")
    print(
        f"| {row['label']} | {row['int8']['ppl']:.4f} (float {row['fp32']['ppl']:.4f}) "
        f"| {100 * (row['ppl_ratio'] - 1):+.2f}% "
        f"| {row['kl']['mean']:.4f} / {row['kl']['p99']:.4f} "
        f"| {100 * row['top1_agreement']:.1f}% "
        f"| {size / 1e6:.1f} |" if size else
        f"| {row['label']} | {row['int8']['ppl']:.4f} (float {row['fp32']['ppl']:.4f}) "
        f"| {100 * (row['ppl_ratio'] - 1):+.2f}% "
        f"| {row['kl']['mean']:.4f} / {row['kl']['p99']:.4f} "
        f"| {100 * row['top1_agreement']:.1f}% | |"
    )
