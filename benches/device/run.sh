#!/bin/bash
# One run on a lent GPU machine (16 cores, no Rust): CUDA checks on the GPU while 14 libFuzzer
# workers use the other cores. Prepared here, never run yet (no machine was lent when it was
# ready). Prepare `.device/` (ignored through .git/info/exclude), under 64 MiB with the tree:
#   cuda_bins.tar.xz  stripped `burn-int8` (cargo build --release -p burn-int8-cli
#                     --features cuda) and `integration` (cargo test --release --features cuda
#                     --test integration --no-run)
#   fuzz.tar.xz       bin/<target> (stripped cargo-fuzz builds) and corpus/ (fuzz/corpus), as
#                     `tar cf - bin corpus | xz -9` (a 64 MiB window shares the three big binaries)
#   hf270m/           config.json (crates/gemma3/tests/fixtures/gemma3-270m/hf-config.json) and
#                     tokenizer.vocab.json.xz (the GGUF vocabulary); make_random_hf.py beside this
# then run `bash .device/run.sh` with carry [".device"].
cd "$(dirname "$0")/.."
D=$PWD/.device
LOG=$OUT/cuda.log
exec > >(tee -a $LOG) 2>&1
nproc; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; date -u
mkdir -p /tmp/fz /tmp/bin && python3 -c "import tarfile; tarfile.open('$D/fuzz.tar.xz').extractall('/tmp/fz')" && python3 -c "import tarfile; tarfile.open('$D/cuda_bins.tar.xz').extractall('/tmp/bin')" && ls -la /tmp/fz /tmp/bin
fuzz() { # target workers seconds
  mkdir -p /tmp/fz/work/$1 /tmp/fz/art/$1 /tmp/fz/logs/$1
  (cd /tmp/fz/logs/$1 && /tmp/fz/bin/$1 -jobs=$2 -workers=$2 -max_total_time=$3 -rss_limit_mb=4096 -timeout=10 \
     -artifact_prefix=/tmp/fz/art/$1/ /tmp/fz/work/$1 /tmp/fz/corpus/$1 >/dev/null 2>&1) &
}
T=450
fuzz gguf_model 3 $T; fuzz hf_loader 3 $T; fuzz tokenizer 3 $T; fuzz gguf_reader 2 $T; fuzz gemma3_config 1 $T; fuzz preset_loader 2 $T
export CARGO_MANIFEST_DIR=$PWD BURN_INT8_TEST_BACKENDS=cuda
echo "== gpu_kernels"; timeout 120 /tmp/bin/integration gpu_kernels:: --test-threads=1 --include-ignored --nocapture
mkdir -p /tmp/hf270m && cp $D/hf270m/* /tmp/hf270m/ && python3 -c "import lzma; open('/tmp/hf270m/tokenizer.vocab.json','wb').write(lzma.open('/tmp/hf270m/tokenizer.vocab.json.xz').read())" && rm /tmp/hf270m/tokenizer.vocab.json.xz && python3 $PWD/benches/device/make_random_hf.py /tmp/hf270m
B=/tmp/bin/burn-int8
echo "== generate cuda fp32"; timeout 60 $B gemma3 generate --model /tmp/hf270m --backend cuda --prompt "Keras is a" --max-length 16
echo "== generate cuda int8"; timeout 60 $B gemma3 generate --model /tmp/hf270m --backend cuda --int8 --prompt "Keras is a" --max-length 16
echo "== bench cuda"; timeout 150 $B gemma3 bench --model /tmp/hf270m --backend cuda --batch 1,16 --json | tee $OUT/bench_cuda.json
date -u; wait; date -u
# Fuzz results: the last status line of every job, and whatever crashed.
for t in /tmp/fz/logs/*; do echo "== $(basename $t)"; for f in $t/fuzz-*.log; do grep -a -E "DONE|ERROR|SUMMARY|#[0-9]+" $f | tail -1; done; done > $OUT/fuzz_summary.txt
grep -a -l -E "ERROR|panicked" /tmp/fz/logs/*/fuzz-*.log >> $OUT/fuzz_summary.txt
(cd /tmp/fz && tar czf $OUT/fuzz_found.tar.gz art logs && du -sh work/*) >> $OUT/fuzz_summary.txt 2>&1
cat $OUT/fuzz_summary.txt
