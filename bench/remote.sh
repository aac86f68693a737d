#!/usr/bin/env bash
# The overhead of a remote policy: `saffron bench --strategy` for sample,
# Best-of-8 and Saffron-8 (the policy-logits stand-in MRM) on SmolLM2, run
# on the local engine and then over llama-server on 127.0.0.1 (built by
# scripts/llama-server.sh), one request in flight and then 8 (the server
# started with 8 slots). The server is restarted before each remote run, so
# each starts with an empty cache as a local search does. Same thread count
# on both sides; server and client share this machine.
#
# usage: bench/remote.sh [THREADS] [PROMPTS]     (defaults: 2, 4)
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${1:-2}
prompts=${2:-4}
home=${SAFFRON_HOME:-$HOME/.cache/saffron}
gguf=$home/models/smollm2-135m-instruct-q4_1.gguf
[ -f "$gguf" ] || { echo "model $gguf not found: run saffron fetch" >&2; exit 1; }
server=$(bash scripts/llama-server.sh)
cargo build --release --locked -p saffron-cli >&2
saffron=target/release/saffron
port=18099
url="openai+http://127.0.0.1:$port/v1#smollm2"
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap stop EXIT
start() {
  "$server" -m "$gguf" --host 127.0.0.1 --port $port -c 16384 -np 8 -t "$threads" --no-webui --alias smollm2 \
    > /dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 0.2; done
}
run() {
  echo "## $1" >&2
  shift
  "$saffron" bench --model "$gguf" --threads "$threads" --strategy sample,best-of-n,saffron --widths 8 \
    --prompts "$prompts" "$@" 2>/dev/null | tail -3
}
echo "### local engine"; run local
for c in 1 8; do
  start
  echo "### llama-server, $c in flight"; run "remote, concurrency $c" --remote "$url" --remote-concurrency "$c"
  stop
done
