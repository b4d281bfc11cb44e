#!/usr/bin/env bash
# Ours vs PyTorch 2.13 on the same work, back to back: the four comparisons of BENCHMARKS.md (ControlNet and base
# training, 1 rank x 1 thread and 2 ranks vs DDP over gloo), repeated ROUNDS times so a busy machine shows up as a
# spread instead of one lucky or unlucky number. Prints every run and a summary table (medians and ranges of the
# ratio, peak RSS). Each comparison is one `controlnet bench ... --torch DIR` run, so the two sides share a minute.
#
#   scripts/bench-vs-torch.sh [ROUNDS]        (default 3; about 2 minutes per round)
#   REF=/path/to/reference/pytorch scripts/bench-vs-torch.sh
#
# Needs torch (pip install /opt/wheels/torch-*.whl) and the release build (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"
REF="${REF:-../shared/reference/pytorch}"
BIN=.build/release/controlnet
OUT="${OUT:-runs/bench-vs-torch-$(date +%Y%m%d-%H%M%S)}"

source scripts/bench/torch-setup.sh torch_bench.py
echo "writing JSON to $OUT; $ROUNDS round(s); $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

run() {  # name, then the command
    local name="$1"; shift
    local file="$OUT/$name-$round.json"
    "$@" > "$file" 2> "$OUT/$name-$round.err" || { echo "error: $name failed, see $OUT/$name-$round.err" >&2; exit 1; }
    python3 - "$file" "$name" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); t = d["torch"]
print(f'{sys.argv[2]:>16}: ours {d["samplesPerSecond"]:6.1f} samples/s, torch {t["samplesPerSecond"]:6.1f}, '
      f'ratio {t["oursOverTorch"]:.3f}, peak RSS/rank {d["peakRSSMegabytesPerRankMax"]:.0f} MB (torch {t["peakRSSMegabytesRank0"]} MB), '
      f'kernels {d["kernelISA"]}, BLAS {d["blasCore"]}')
EOF
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round/$ROUNDS ($(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
    for mode in controlnet base; do
        run "$mode-np1" "$BIN" bench --mode "$mode" --config mnist --batch-size 64 --steps 7 --threads 1 --torch "$REF"
        run "$mode-np2" mpirun -np 2 --mca pml ob1 --mca btl self,vader --bind-to none -x OPENBLAS_CORETYPE \
            "$BIN" bench --mode "$mode" --config mnist --batch-size 64 --steps 7 --threads 1 --torch "$REF"
    done
done

python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
print("\n| run | ours samples/s (median) | PyTorch samples/s (median) | ours / PyTorch: median (range) | peak RSS per rank, ours / PyTorch |")
print("|---|---|---|---|---|")
np1 = {}
for name in ["controlnet-np1", "controlnet-np2", "base-np1", "base-np2"]:
    runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, name + "-*.json")))]
    ours = [r["samplesPerSecond"] for r in runs]
    torch = [r["torch"]["samplesPerSecond"] for r in runs]
    ratio = [r["torch"]["oursOverTorch"] for r in runs]
    rss = max(r["peakRSSMegabytesPerRankMax"] for r in runs)
    trss = max(r["torch"]["peakRSSMegabytesRank0"] for r in runs)
    print(f"| {name} | {statistics.median(ours):.1f} | {statistics.median(torch):.1f} | "
          f"**{statistics.median(ratio):.2f}** ({min(ratio):.2f} - {max(ratio):.2f}), {len(runs)} runs | {rss:.0f} / {trss} MB |")
    np1[name] = ours
for mode in ["controlnet", "base"]:
    a, b = np1[mode + "-np1"], np1[mode + "-np2"]
    pairs = [y / x for x, y in zip(a, b)]
    print(f"\n{mode}: np 2 / np 1 throughput, same round: median {statistics.median(pairs):.2f}x "
          f"(range {min(pairs):.2f} - {max(pairs):.2f})")
EOF
