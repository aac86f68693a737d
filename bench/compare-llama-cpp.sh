#!/usr/bin/env bash
# Compares `saffron bench` with llama.cpp's own benchmark tools on the same
# GGUF and thread count:
#   prompt  = llama-bench -p 128 -n 0             (tokens/s)
#   decode  = llama-bench -p 0 -n 128 -d 128      (tokens/s; after a 128-token
#             context, as saffron's decode runs after its prompt)
#   tree B  = llama-batched-bench -pps -kvu -npp 128 -ntg 128 -npl B, its S_TG
# Both are built with native CPU flags. The reference llama.cpp is built from
# the source package of llama-cpp-python (for reference only: it lives under
# $SAFFRON_HOME/bench, never in the repository).
#
# This VM's run-to-run noise (±10-15%) is larger than the differences we
# look for, so the script runs ROUNDS interleaved rounds (reference then
# saffron on odd rounds, saffron then reference on even ones, so a slow drift
# cancels), one repetition per tool per round, and reports for each measure
# the median of each side and the median, min and max of the per-round
# ratios saffron / llama.cpp. The median ratio is the number to quote.
#
# usage: bench/compare-llama-cpp.sh [MODEL] [THREADS] [ROUNDS]
#   MODEL: smollm2 (default), qwen, or a GGUF path; THREADS: default nproc;
#   ROUNDS: default 7
set -euo pipefail
cd "$(dirname "$0")/.."

home=${SAFFRON_HOME:-$HOME/.cache/saffron}
work=$home/bench
model=${1:-smollm2}
threads=${2:-$(nproc)}
rounds=${3:-7}
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

out=$work/results/$(basename "$gguf" .gguf)-t$threads
rm -rf "$out"
mkdir -p "$out"

reference_round() {
  local r=$1
  "$bin/llama-bench" -m "$gguf" -p 128 -n 0 -t "$threads" -r 1 -fa 1 -o json > "$out/prompt-$r.json"
  "$bin/llama-bench" -m "$gguf" -p 0 -n 128 -d 128 -t "$threads" -r 1 -fa 1 -o json > "$out/decode-$r.json"
  "$bin/llama-batched-bench" -m "$gguf" -c 8192 -b 512 -ub 512 -npp 128 -ntg 128 -npl 8,32 -pps -kvu \
    -t "$threads" -fa on --output-format jsonl 2>/dev/null | grep '^{' > "$out/batched-$r.jsonl"
}
saffron_round() {
  "$saffron" bench --model "$gguf" --threads "$threads" --repeat 1 --json > "$out/saffron-$1.json"
}

for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  if [ $((r % 2)) -eq 1 ]; then reference_round "$r"; saffron_round "$r"
  else saffron_round "$r"; reference_round "$r"; fi
done

python3 - "$out" "$gguf" "$threads" "$rounds" <<'PY'
import json, os, statistics, sys
out, gguf, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
keys = [("prompt_tps", "prompt 128"), ("decode_tps", "decode 128 (after 128)"),
        ("tree8_tps", "tree 8 × 128"), ("tree32_tps", "tree 32 × 128")]
ref = {k: [] for k, _ in keys}
ours = {k: [] for k, _ in keys}
overhead = []
for r in range(1, rounds + 1):
    ref["prompt_tps"].append(json.load(open(f"{out}/prompt-{r}.json"))[0]["avg_ts"])
    ref["decode_tps"].append(json.load(open(f"{out}/decode-{r}.json"))[0]["avg_ts"])
    for line in open(f"{out}/batched-{r}.jsonl"):
        row = json.loads(line)
        ref[f"tree{row['pl']}_tps"].append(row["speed_tg"])
    s = json.load(open(f"{out}/saffron-{r}.json"))
    for k, _ in keys:
        ours[k].append(s[k])
    overhead.append(s["tree32_overhead"])
print(f"model {os.path.basename(gguf)}, {threads} threads, {rounds} interleaved rounds (raw results in {out})")
print("| measure | llama.cpp median | saffron median | ratio median | ratio min–max |")
print("|---|---|---|---|---|")
for k, label in keys:
    ratios = [o / r for o, r in zip(ours[k], ref[k])]
    print(f"| {label} | {statistics.median(ref[k]):.1f} | {statistics.median(ours[k]):.1f} | "
          f"{statistics.median(ratios):.3f} | {min(ratios):.3f}–{max(ratios):.3f} |")
print(f"saffron tree-32 time outside llama_decode: median {100 * statistics.median(overhead):.1f}%")
PY
