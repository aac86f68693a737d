#!/usr/bin/env bash
# Saffron's fluency weight λ, chosen on the dev split: grids/fluency-dev.toml
# once per λ (each run resumable in runs/fluency-dev-λ), each scored by
# `saffron fluency`, then one line per λ: Saffron-16's ASR and its benign
# log-prob per token against undefended sampling's. The rule, fixed before
# any run: the smallest λ whose benign log-prob is within 0.5 nats of
# undefended sampling's; if none is, the λ with the highest.
# usage: scripts/fluency-dev.sh [λ ...]   (default: 0 1 2 4)
set -euo pipefail
cd "$(dirname "$0")/.."
saffron=${SAFFRON:-target/release/saffron}
weights=("${@:-0 1 2 4}")
read -r -a weights <<< "${weights[*]}"
for w in "${weights[@]}"; do
  dir=runs/fluency-dev-$w
  grid=$dir.toml
  mkdir -p runs
  sed "s/^fluency_weight = .*/fluency_weight = $w/" grids/fluency-dev.toml > "$grid"
  $saffron eval "$grid" --out "$dir" --threads "${THREADS:-2}"
  $saffron fluency "$dir" --threads "${THREADS:-2}" > /dev/null
  $saffron report "$dir" > /dev/null
done
python3 - "${weights[@]}" <<'PY'
import json, sys
rows = []
for w in sys.argv[1:]:
    cells = json.load(open(f"runs/fluency-dev-{w}/summary.json"))
    cells = cells["cells"] if isinstance(cells, dict) else cells
    def pick(dataset, strategy):
        return next(c for c in cells if c["dataset"].split("[")[0] == dataset and c["strategy"] == strategy)
    s_b, u_b = pick("all-benign", "saffron"), pick("all-benign", "sample")
    s_h, u_h = pick("advbench", "saffron"), pick("advbench", "sample")
    rows.append((float(w), s_h["asr"]["refusal"]["value"], u_h["asr"]["refusal"]["value"],
                 s_b["mean_logprob"], u_b["mean_logprob"], s_b["over_refusal"]["value"], u_b["over_refusal"]["value"]))
print("λ  saffron ASR  sample ASR  saffron benign lp  sample benign lp  gap  saffron over-refusal  sample over-refusal")
for r in rows:
    print(f"{r[0]:<3} {r[1]:>10.2f} {r[2]:>10.2f} {r[3]:>16.2f} {r[4]:>16.2f} {r[3]-r[4]:>5.2f} {r[5]:>10.2f} {r[6]:>10.2f}")
ok = [r for r in rows if r[4] - r[3] <= 0.5]
chosen = min(ok, key=lambda r: r[0]) if ok else max(rows, key=lambda r: r[3])
print(f"chosen on dev: λ = {chosen[0]:g}")
PY
