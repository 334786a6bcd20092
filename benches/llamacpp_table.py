#!/usr/bin/env python3
"""The side-by-side table of one `benches/llamacpp.sh` run, as Markdown.

    python3 benches/llamacpp_table.py [RESULTS.jsonl [RUN]]

RUN is the run id the script wrote (default: the latest run in the file). Per thread count and
int8 format (lines without a "format" are the Keras scheme, as before formats existed):
the median over rounds of every tool's prefill and decode tok/s, with the range, then the ratios
of our int8 against each baseline, computed per round (both figures of a ratio come from the
same round) and shown as median (range). Standard library only.
"""
import json
import statistics
import sys

BASELINES = [("Burn fp32 (flex)", ("fp32",)), ("llama.cpp Q8_0", ("llamacpp", "Q8_0")),
             ("llama.cpp BF16", ("llamacpp", "BF16")), ("llama.cpp F32", ("llamacpp", "F32"))]
TOOLS = [("ours int8 (flex)", ("int8",))] + BASELINES


def get(line, path, key):
    for part in path:
        line = line[part]
    return float(line[key])


def spread(values, fmt):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "benches/results.jsonl"
    lines = [json.loads(text) for text in open(path, encoding="utf-8") if text.strip()]
    lines = [line for line in lines if "llamacpp" in line]
    if not lines:
        sys.exit(f"{path}: no llama.cpp side-by-side lines (run benches/llamacpp.sh)")
    run = sys.argv[2] if len(sys.argv) > 2 else lines[-1]["run"]
    lines = [line for line in lines if line["run"] == run]
    first = lines[0]
    print(f"Run {run}, {first.get('cpu', '?')}, prompt {first['prompt_tokens']}, "
          f"{first['new_tokens']} new tokens, {max(line['round'] for line in lines)} rounds; "
          f"llama.cpp options: `{first['llamacpp'].get('options', '').strip() or 'none'}`\n")
    formats = list(dict.fromkeys(line.get("format", "keras") for line in lines))
    for threads in sorted({line["threads"] for line in lines}, reverse=True):
        for fmt in formats:
            rows = [line for line in lines
                    if line["threads"] == threads and line.get("format", "keras") == fmt]
            print(f"**{threads} threads, int8 format `{fmt}`** ({len(rows)} rounds)\n")
            print("| tool | prefill tok/s | decode tok/s |\n|---|---|---|")
            for name, tool in TOOLS:
                print(f"| {name} | {spread([get(r, tool, 'prefill_tok_s') for r in rows], '{:.0f}')} "
                      f"| {spread([get(r, tool, 'decode_tok_s') for r in rows], '{:.1f}')} |")
            print("\n| ours int8 ÷ | prefill | decode |\n|---|---|---|")
            for name, base in BASELINES:
                ratio = lambda key: [get(r, ("int8",), key) / get(r, base, key) for r in rows]
                print(f"| {name} | {spread(ratio('prefill_tok_s'), '{:.2f}×')} "
                      f"| {spread(ratio('decode_tok_s'), '{:.2f}×')} |")
            print()


if __name__ == "__main__":
    main()
