#!/usr/bin/env bash
# Compares `saffron bench` with llama.cpp's own benchmark tools on the same
# GGUF and thread count:
#   prompt  = llama-bench -p 128          (tokens/s)
#   decode  = llama-bench -n 128          (tokens/s)
#   tree B  = llama-batched-bench -pps -kvu -npp 128 -ntg 128 -npl B, its S_TG
# Both are built with native CPU flags. The reference llama.cpp is built from
# the source package of llama-cpp-python (for reference only: it lives under
# $SAFFRON_HOME/bench, never in the repository).
#
# usage: bench/compare-llama-cpp.sh [MODEL] [THREADS]
#   MODEL: smollm2 (default), qwen, or a GGUF path; THREADS: default nproc
set -euo pipefail
cd "$(dirname "$0")/.."

home=${SAFFRON_HOME:-$HOME/.cache/saffron}
work=$home/bench
model=${1:-smollm2}
threads=${2:-$(nproc)}
reference=llama-cpp-python==0.3.36

case "$model" in
  smollm2) gguf=$home/models/smollm2-135m-instruct-q4_1.gguf ;;
  qwen) gguf=$home/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf ;;
  *) gguf=$model ;;
esac
[ -f "$gguf" ] || { echo "model $gguf not found: run saffron fetch" >&2; exit 1; }

RUSTFLAGS="-C target-cpu=native" cargo build --release --locked -p saffron-cli --target-dir target/native
saffron=target/native/release/saffron

bin=$work/llama.cpp/build/bin
if [ ! -x "$bin/llama-batched-bench" ] || [ ! -x "$bin/llama-bench" ]; then
  mkdir -p "$work"
  python3 -m pip download --no-deps --no-binary :all: --dest "$work" "$reference"
  rm -rf "$work/llama.cpp" "$work/src"
  mkdir -p "$work/src"
  tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work/src"
  mv "$work"/src/llama_cpp_python-*/vendor/llama.cpp "$work/llama.cpp"
  cmake -S "$work/llama.cpp" -B "$work/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF
  cmake --build "$work/llama.cpp/build" --target llama-bench llama-batched-bench -j "$(nproc)"
fi

out=$work/results
mkdir -p "$out"
"$bin/llama-bench" -m "$gguf" -p 128 -n 128 -t "$threads" -r 3 -fa 1 -o json > "$out/llama-bench.json"
"$bin/llama-batched-bench" -m "$gguf" -c 8192 -b 512 -ub 512 -npp 128 -ntg 128 -npl 8,32 -pps -kvu \
  -t "$threads" -fa on --output-format jsonl 2>/dev/null | grep '^{' > "$out/batched-bench.jsonl"
"$saffron" bench --model "$gguf" --threads "$threads" --repeat 3 --json > "$out/saffron.json"

python3 - "$out" "$gguf" "$threads" <<'PY'
import json, sys, os
out, gguf, threads = sys.argv[1], sys.argv[2], sys.argv[3]
lb = json.load(open(os.path.join(out, "llama-bench.json")))
ref = {}
for row in lb:
    key = "prompt_tps" if row["n_gen"] == 0 else "decode_tps"
    ref[key] = row["avg_ts"]
for line in open(os.path.join(out, "batched-bench.jsonl")):
    row = json.loads(line)
    ref[f"tree{row['pl']}_tps"] = row["speed_tg"]
ours = json.load(open(os.path.join(out, "saffron.json")))
print(f"model {os.path.basename(gguf)}, {threads} threads")
print("| measure | llama.cpp | saffron | ratio |")
print("|---|---|---|---|")
for key, label in [("prompt_tps", "prompt 128"), ("decode_tps", "decode 128"), ("tree8_tps", "tree 8 × 128"), ("tree32_tps", "tree 32 × 128")]:
    print(f"| {label} | {ref[key]:.1f} | {ours[key]:.1f} | {ours[key] / ref[key]:.3f} |")
PY
